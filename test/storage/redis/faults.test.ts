import { once } from 'node:events'
import { Writable } from 'node:stream'
import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyInstance } from 'fastify'
import { Redis } from 'ioredis'
import t, { type Test } from 'tap'
import { buildApp, REDACTED_LOG_PATHS } from '../../../src/app.ts'
import { COMMAND_TIMEOUT_MS } from '../../../src/storage/redis/connection.ts'
import { WRITE_PROBE_INTERVAL_MS, writeRefusalReason } from '../../../src/storage/redis/write-probe.ts'
import { PASSWORD, addUser, buildTestApp, redisMode, testConfig } from '../../helper.ts'
import { freePort, startRedisServer } from '../../redis-server.ts'

/** How stale readiness may be: a background check every WRITE_PROBE_INTERVAL_MS, each waiting at most the command timeout. */
const READINESS_STALE_MS = WRITE_PROBE_INTERVAL_MS + COMMAND_TIMEOUT_MS

/**
 * Polls a readiness answer every 20 ms until it is `status`. Resolves to how long that took and
 * the slowest single answer meanwhile. Fails past 10 s.
 */
async function readinessBecomes (t: Test, status: number, readiness: () => Promise<number>): Promise<{ afterMs: number, slowestMs: number }> {
  const started = Date.now()
  let slowestMs = 0
  const answer = async (): Promise<number> => {
    const sentAt = Date.now()
    const answered = await readiness()
    slowestMs = Math.max(slowestMs, Date.now() - sentAt)
    return answered
  }
  let answered = await answer()
  while (answered !== status && Date.now() - started < 10_000) {
    await sleep(20)
    answered = await answer()
  }
  t.equal(answered, status, `readiness ${status}`)
  return { afterMs: Date.now() - started, slowestMs }
}

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
  const outcomes = Object.fromEntries((await app.metrics.loginAttempts.get()).values.map(({ labels, value }) => [labels.outcome, value]))
  t.same({ unavailable: outcomes.unavailable, shed: outcomes.shed }, { unavailable: 3, shed: undefined }, 'counted as Redis failures, not as shed logins')
  const readiness = async () => (await fetch(`${base}/health/ready`)).status
  const { afterMs } = await readinessBecomes(t, 503, readiness)
  t.ok(afterMs <= READINESS_STALE_MS + 1000, `not ready ${afterMs} ms after the logins saw Redis down (checked every ${WRITE_PROBE_INTERVAL_MS} ms)`)
  t.same(Object.keys(await (await fetch(`${base}/health/ready`)).json()), ['message'])
  t.equal((await fetch(`${base}/health/live`)).status, 200, 'still alive')

  await redis.start()
  // The fresh redis-server is empty: re-create the user, then the service must recover by itself.
  await readinessBecomes(t, 200, readiness)
  await addUser(app, 'alice', PASSWORD)
  t.equal((await login()).status, 200, 'logins work again (the rate-limit script is reloaded)')
})

t.test('Redis mode without a key file refuses to start and says why', async (t) => {
  const redis = await startRedisServer()
  t.teardown(() => redis.stop())
  await t.rejects(buildTestApp(t, { REDIS_URL: redis.url }), /JWT_PRIVATE_KEY_FILE is required in Redis mode/)
})

/** The app with its log lines collected, as JSON objects. */
async function appWithLog (t: Test, env: Record<string, string>): Promise<{ app: FastifyInstance, lines: Array<Record<string, unknown>> }> {
  const lines: Array<Record<string, unknown>> = []
  const stream = new Writable({ write (chunk, _encoding, done) { for (const line of chunk.toString().trim().split('\n')) lines.push(JSON.parse(line)); done() } })
  const app = await buildApp(await testConfig(t, env), { level: 'info', redact: REDACTED_LOG_PATHS, stream })
  t.teardown(() => app.close())
  await app.ready()
  // Start-up does not wait for Redis; these tests start from a connected client.
  if (app.redis!.status !== 'ready') await once(app.redis!, 'ready')
  return { app, lines }
}

const ready = async (app: FastifyInstance) => (await app.inject('/health/ready')).statusCode
const probeLines = (lines: Array<Record<string, unknown>>) => lines.filter((line) => /health\/ready answers/.test(String(line.msg))).map((line) => line.msg)

t.test('a flood of made-up usernames fills a small-maxmemory Redis: not ready, with the reason logged once; ready again without a restart', async (t) => {
  const { env } = await redisMode(t)
  const { app, lines } = await appWithLog(t, { ...env, RATE_LIMIT_MAX: '100000', ARGON2_MEMORY_KIB: '8192', ARGON2_TIME_COST: '1' })
  const redis = app.redis!
  t.equal(await ready(app), 200)
  let sent = 0
  const madeUpLogin = async () => {
    const response = await app.inject({
      method: 'POST',
      url: '/api/auth/login',
      remoteAddress: `10.${sent >> 16 & 255}.${sent >> 8 & 255}.${sent & 255}`,
      payload: { username: `made-up-${sent}`, password: 'whatever' }
    })
    sent++
    return response.statusCode
  }
  // Measured once Redis has loaded the scripts and grown its tables, so the records fill the room left.
  for (let i = 0; i < 30; i++) t.equal(await madeUpLogin(), 401)
  const usedMemory = Number(/used_memory:(\d+)/.exec(await redis.info('memory'))?.[1])
  await redis.config('SET', 'maxmemory-policy', 'noeviction')
  await redis.config('SET', 'maxmemory', String(usedMemory + 64 * 1024))
  let statusCode = 401
  // eslint-disable-next-line no-unmodified-loop-condition -- madeUpLogin() counts sent
  while (statusCode === 401 && sent < 5000) statusCode = await madeUpLogin()
  t.ok(sent > 60, `${sent} made-up usernames filled it`)
  t.equal(statusCode, 503, 'then logins answer 503')
  // At the very edge a small write may still fit where a login's did not: the flood goes on until it does not.
  await readinessBecomes(t, 503, async () => {
    await madeUpLogin()
    return await ready(app)
  })
  t.equal(await ready(app), 503, 'and readiness says so')
  t.same(probeLines(lines), ['Redis refuses writes: out of memory (maxmemory reached); /health/ready answers 503'], 'one line for the change, naming why')
  t.notOk(lines.some((line) => JSON.stringify(line).includes('"command"')), 'no ioredis error object (which carries the command) is logged')

  await redis.config('SET', 'maxmemory', '0')
  await readinessBecomes(t, 200, async () => await ready(app))
  t.equal(probeLines(lines).length, 2)
  t.match(probeLines(lines)[1], /accepts writes again/)
})

t.test('a read-only replica is not ready; NOAUTH is named without the password', async (t) => {
  const { redis: server, env } = await redisMode(t)
  const { app, lines } = await appWithLog(t, env)
  t.equal(await ready(app), 200)
  // The test's own connection turns the server into a replica and back: the service's client
  // reconnects on READONLY (a primary demoted by a failover), so it is not the one to send it.
  const admin = new Redis(server.url)
  t.teardown(() => admin.disconnect())
  await admin.replicaof('127.0.0.1', String(await freePort()))
  await readinessBecomes(t, 503, async () => await ready(app))
  t.match(probeLines(lines)[0], /^Redis refuses writes: connected to a read-only replica/)
  await admin.replicaof('NO', 'ONE')
  // The service's client may also still be reconnecting after the READONLY answer.
  await readinessBecomes(t, 200, async () => await ready(app))

  await admin.config('SET', 'requirepass', 'probe-secret-password')
  const stranger = new Redis(server.url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null })
  t.teardown(() => stranger.disconnect())
  // Their refusals are read from the commands below; the connections' own error events too would
  // print "[ioredis] Unhandled error event".
  stranger.on('error', () => {})
  const error = await stranger.set('k', 'v').catch((error: unknown) => error)
  t.match(writeRefusalReason(error), /^Redis refuses writes: authentication required or rejected$/)
  const withWrongPassword = new Redis(`redis://:wrong-secret@127.0.0.1:${server.port}`, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null })
  t.teardown(() => withWrongPassword.disconnect())
  withWrongPassword.on('error', () => {})
  const authError = await withWrongPassword.connect().then(() => withWrongPassword.set('k', 'v')).catch((error: unknown) => error)
  t.notMatch(writeRefusalReason(authError), /secret/, 'the reason never carries the password')
})

t.test('a Redis that stops answering: /health/ready answers at once with the latest check, and turns 503 within a check and its timeout', async (t) => {
  const { redis: server, env } = await redisMode(t)
  const { app, lines } = await appWithLog(t, env)
  await readinessBecomes(t, 200, async () => await ready(app))
  // The server stopped (SIGSTOP): connected, but it answers nothing, as a Redis host that hangs.
  server.signal('SIGSTOP')
  t.teardown(() => { server.signal('SIGCONT') })
  const { afterMs, slowestMs } = await readinessBecomes(t, 503, async () => await ready(app))
  t.ok(afterMs <= READINESS_STALE_MS + 1000, `not ready ${afterMs} ms after Redis stopped answering`)
  t.ok(slowestMs < COMMAND_TIMEOUT_MS / 2, `no probe waited on Redis (slowest ${slowestMs} ms)`)
  t.match(probeLines(lines), [/^Redis is unreachable \(/], 'the reason logged once')

  server.signal('SIGCONT')
  await readinessBecomes(t, 200, async () => await ready(app))
})
