import t from 'tap'
import { PASSWORD, addUser, buildTestApp, redisMode } from './helper.js'
import { startRedisServer } from './redis-server.js'

t.test('Redis down: logins get 503 within 1 s, readiness is false; recovery is automatic', async (t) => {
  const { redis, env } = await redisMode(t)
  const app = await buildTestApp(t, { ...env, RATE_LIMIT_MAX: '100' })
  await addUser(app, 'alice', PASSWORD)
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as { port: number }
  const base = `http://127.0.0.1:${port}`
  const login = () => fetch(`${base}/api/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username: 'alice', password: PASSWORD })
  })

  t.equal((await login()).status, 200)

  await redis.stop()
  for (let i = 0; i < 3; i++) {
    const started = Date.now()
    const response = await login()
    const elapsed = Date.now() - started
    t.equal(response.status, 503, `attempt ${i + 1} while Redis is down`)
    t.same(await response.json(), { message: 'Service temporarily unavailable, try again shortly' })
    t.ok(elapsed < 1000, `answered in ${elapsed} ms`)
  }
  const notReady = await fetch(`${base}/health/ready`)
  t.equal(notReady.status, 503)
  t.same(Object.keys(await notReady.json()), ['message'])
  t.equal((await fetch(`${base}/health/live`)).status, 200, 'still alive')

  await redis.start()
  // The fresh redis-server is empty: re-create the user, then the service must recover by itself.
  let recovered = false
  for (let i = 0; i < 50 && !recovered; i++) {
    recovered = (await fetch(`${base}/health/ready`)).status === 200
    if (!recovered) await new Promise((resolve) => setTimeout(resolve, 100))
  }
  t.ok(recovered, 'ready again after Redis is back')
  await addUser(app, 'alice', PASSWORD)
  t.equal((await login()).status, 200, 'logins work again (the rate-limit script is reloaded)')
})

t.test('Redis mode without a key file refuses to start and says why', async (t) => {
  const redis = await startRedisServer()
  t.teardown(() => redis.stop())
  await t.rejects(buildTestApp(t, { REDIS_URL: redis.url }), /JWT_PRIVATE_KEY_FILE is required in Redis mode/)
})
