import type { FastifyInstance } from 'fastify'
import t from 'tap'
import { AccountThrottle, LocalFailureStore } from '../src/account-throttle/account-throttle.js'
import { scanKeys } from '../src/redis-client.js'
import { PASSWORD, addUser, buildTestApp } from './helper.js'
import { redisTopologyTest } from './redis-topologies.js'

const THROTTLE = { ACCOUNT_THROTTLE_THRESHOLD: '3', ACCOUNT_THROTTLE_BASE_SECONDS: '1', ACCOUNT_THROTTLE_MAX_SECONDS: '2', RATE_LIMIT_MAX: '1000' }
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

let nextAddress = 1
/** Each attempt from a different client IP: the per-IP limit never applies, only the per-username one. */
const attempt = async (app: FastifyInstance, username: string, password: string) =>
  await app.inject({
    method: 'POST',
    url: '/api/auth/login',
    remoteAddress: `10.0.${Math.floor(nextAddress / 250)}.${(nextAddress++ % 250) + 1}`,
    payload: { username, password }
  })

t.test('the back-off doubles from the base and is capped', async (t) => {
  const throttle = new AccountThrottle(new LocalFailureStore(), { threshold: 10, baseMs: 30_000, maxMs: 900_000 })
  t.same([10, 11, 12, 13, 14, 15, 16, 100].map((failures) => throttle.backoffMs(failures) / 1000), [30, 60, 120, 240, 480, 900, 900, 900])
})

t.test('many IPs guessing one username are throttled; existing or not, alike; success resets', async (t) => {
  const app = await buildTestApp(t, THROTTLE)
  await addUser(app, 'alice', PASSWORD)

  for (const username of ['alice', 'ghost']) {
    for (let i = 0; i < 3; i++) t.equal((await attempt(app, username, `wrong guess ${i}`)).statusCode, 401, `${username} failure ${i + 1}`)
  }
  const throttledReal = await attempt(app, 'alice', PASSWORD)
  const throttledGhost = await attempt(app, 'ghost', PASSWORD)
  for (const response of [throttledReal, throttledGhost]) {
    t.equal(response.statusCode, 429, 'even the right password waits')
    t.same(response.json(), { message: 'Too many failed login attempts for this username, retry in 1 second' })
    t.equal(response.headers['retry-after'], '1')
  }
  t.equal((await attempt(app, 'ALICE', PASSWORD)).statusCode, 429, 'case variants are the same account')
  t.equal((await attempt(app, 'bob', 'whatever')).statusCode, 401, 'other usernames are unaffected')

  await sleep(1100)
  t.equal((await attempt(app, 'alice', 'wrong again')).statusCode, 401, 'one attempt after the wait')
  const doubled = await attempt(app, 'alice', PASSWORD)
  t.equal(doubled.statusCode, 429)
  t.equal(doubled.headers['retry-after'], '2', 'the next wait doubled')

  await sleep(2100)
  t.equal((await attempt(app, 'alice', 'wrong again')).statusCode, 401)
  t.equal((await attempt(app, 'alice', PASSWORD)).headers['retry-after'], '2', 'capped at ACCOUNT_THROTTLE_MAX_SECONDS')

  await sleep(2100)
  t.equal((await attempt(app, 'alice', PASSWORD)).statusCode, 200, 'the real user gets in after the capped wait')
  for (let i = 0; i < 2; i++) t.equal((await attempt(app, 'alice', 'wrong')).statusCode, 401)
  t.equal((await attempt(app, 'alice', PASSWORD)).statusCode, 200, 'the success reset the count')
})

t.test('a burst of concurrent guesses gets no more than the threshold through', async (t) => {
  const app = await buildTestApp(t, THROTTLE)
  await addUser(app, 'alice', PASSWORD)
  const burst = await Promise.all(Array.from({ length: 12 }, (_, i) => attempt(app, 'alice', `guess ${i}`)))
  const statuses = burst.map((response) => response.statusCode).sort()
  t.same(statuses, [...Array(3).fill(401), ...Array(9).fill(429)], 'exactly 3 verified, the rest refused')
})

redisTopologyTest(t, 'Redis mode: the throttle is shared by replicas and stores no username in clear', async (t, mode) => {
  const env = { ...THROTTLE, ...mode.env }
  const [replicaA, replicaB] = [await buildTestApp(t, env), await buildTestApp(t, env)]
  await addUser(replicaA, 'alice', PASSWORD)

  for (const replica of [replicaA, replicaB, replicaA]) t.equal((await attempt(replica, 'alice', 'wrong')).statusCode, 401)
  t.equal((await attempt(replicaB, 'alice', PASSWORD)).statusCode, 429)

  // A burst for another username across both replicas: the count is atomic in Redis.
  const burst = await Promise.all(Array.from({ length: 12 }, (_, i) => attempt(i % 2 === 0 ? replicaA : replicaB, 'bob', `guess ${i}`)))
  t.same(burst.map((response) => response.statusCode).sort(), [...Array(3).fill(401), ...Array(9).fill(429)], 'exactly 3 verified across replicas')

  const keys = await scanKeys(replicaA.redis!, `${mode.env.REDIS_KEY_PREFIX}login-failures:*`)
  t.equal(keys.length, 2)
  t.notMatch(keys.join(' '), /alice|bob/i, 'the keys are hashes of the usernames')
})
