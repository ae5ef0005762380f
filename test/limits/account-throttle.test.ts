import type { FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import { AccountThrottle, FAILURE_WINDOW_MS } from '../../src/limits/account-throttle.ts'
import { LocalThrottleStore } from '../../src/storage/memory/account-throttle.ts'
import { KeyedHash } from '../../src/tokens/keyed-hash.ts'
import { PASSWORD, addUser, buildTestApp, redisMode, untilClock } from '../helper.ts'
import { behaviourTopologies, redisModeOn } from '../redis-topologies.ts'

const THROTTLE = {
  ACCOUNT_THROTTLE_THRESHOLD: '3',
  ACCOUNT_THROTTLE_BASE_SECONDS: '1',
  ACCOUNT_THROTTLE_MAX_SECONDS: '2',
  RATE_LIMIT_MAX: '1000',
  // The cheapest argon2 the settings allow: these tests are about the throttle, not hashing.
  ARGON2_MEMORY_KIB: '8192',
  ARGON2_TIME_COST: '1'
}
/**
 * For the tests that never wait a wait out: one longer than any delay of a busy machine, so every
 * refusal they expect comes inside it.
 */
const LONG_WAITS = { ACCOUNT_THROTTLE_BASE_SECONDS: '60', ACCOUNT_THROTTLE_MAX_SECONDS: '60' }
/** Waits as a client that honours the response's Retry-After does: that many seconds by the clock. */
async function honourRetryAfter (response: { headers: Record<string, unknown> }): Promise<void> {
  await untilClock(Date.now() + Number(response.headers['retry-after']) * 1000)
}

// Most of these tests wait out the throttle's waits, in whole seconds: they run side by side, two
// at a time (four kept this process so busy on a loaded machine that a Redis reply waited past the
// connection's 800 ms command timeout).
t.jobs = 2

let nextAddress = 1
/** A client address never used before in this file. */
const freshAddress = () => `10.${Math.floor(nextAddress / 62500) % 250}.${Math.floor(nextAddress / 250) % 250}.${(nextAddress++ % 250) + 1}`

const attempt = async (app: FastifyInstance, username: string, password: string, remoteAddress = freshAddress()) =>
  await app.inject({ method: 'POST', url: '/api/auth/login', remoteAddress, payload: { username, password } })

/**
 * Two replicas: in Redis mode two app instances on one redis-server ("shared"); in embedded mode
 * the one instance twice, so every test runs against both stores.
 */
const modes: Record<string, (t: Test, env?: Record<string, string>) => Promise<[FastifyInstance, FastifyInstance]>> = {
  embedded: async (t, env = {}) => {
    const app = await buildTestApp(t, { ...THROTTLE, ...env })
    return [app, app]
  },
  ...Object.fromEntries(behaviourTopologies().map((name) => [`redis ${name}`, async (t: Test, env: Record<string, string> = {}) => {
    const shared = { ...THROTTLE, ...env, ...(await redisModeOn(name)).env }
    return [await buildTestApp(t, shared), await buildTestApp(t, shared)] as [FastifyInstance, FastifyInstance]
  }]))
}

t.test('the back-off doubles from the base and is capped', async (t) => {
  const throttle = new AccountThrottle(new LocalThrottleStore(), new KeyedHash(Buffer.alloc(32)), { threshold: 10, baseMs: 30_000, maxMs: 900_000, trustedAddressDays: 30 })
  t.same([10, 11, 12, 13, 14, 15, 16, 100].map((failures) => throttle.backoffMs(failures) / 1000), [30, 60, 120, 240, 480, 900, 900, 900])
})

for (const [mode, replicas] of Object.entries(modes)) {
  t.test(`${mode}: many addresses guessing one username are throttled, existing or not, alike`, async (t) => {
    const [a, b] = await replicas(t)
    await addUser(a, 'alice', PASSWORD)

    // Side by side, so the 1 s waits set by the third failures hold the refusals below on a busy machine too.
    for (let i = 0; i < 3; i++) {
      for (const username of ['alice', 'ghost']) t.equal((await attempt(i % 2 === 0 ? a : b, username, `wrong guess ${i}`)).statusCode, 401, `${username} failure ${i + 1}`)
    }
    // At once, all within the 1 s wait however busy the machine (none of them is hashed).
    const [throttledReal, throttledGhost, caseVariant] = await Promise.all([attempt(b, 'alice', PASSWORD), attempt(a, 'ghost', PASSWORD), attempt(a, 'ALICE', PASSWORD)])
    for (const response of [throttledReal, throttledGhost]) {
      t.equal(response.statusCode, 429, 'even the right password waits, from an address the account does not know')
      t.same(response.json(), { message: 'Too many failed login attempts for this username, retry in 1 second' })
      t.equal(response.headers['retry-after'], '1')
    }
    t.equal(caseVariant.statusCode, 429, 'case variants are the same account')
    t.equal((await attempt(a, 'bob', 'whatever')).statusCode, 401, 'other usernames are unaffected')

    await honourRetryAfter(throttledReal)
    t.equal((await attempt(a, 'alice', 'wrong again')).statusCode, 401, 'one attempt after the wait')
    const doubled = await attempt(b, 'alice', PASSWORD)
    t.equal(doubled.statusCode, 429)
    t.equal(doubled.headers['retry-after'], '2', 'the next wait doubled')
    await honourRetryAfter(doubled)
    t.equal((await attempt(a, 'alice', 'wrong again')).statusCode, 401)
    const capped = await attempt(b, 'alice', PASSWORD)
    t.equal(capped.headers['retry-after'], '2', 'capped at ACCOUNT_THROTTLE_MAX_SECONDS')
    await honourRetryAfter(capped)
    t.equal((await attempt(a, 'alice', PASSWORD)).statusCode, 200, 'the owner gets in after the capped wait')
  })

  t.test(`${mode}: a burst of 12 concurrent guesses from 12 addresses gets exactly the threshold through`, async (t) => {
    const [a, b] = await replicas(t, LONG_WAITS)
    await addUser(a, 'alice', PASSWORD)
    const burst = await Promise.all(Array.from({ length: 12 }, (_, i) => attempt(i % 2 === 0 ? a : b, 'alice', `guess ${i}`)))
    t.same(burst.map((response) => response.statusCode).sort(), [...Array(3).fill(401), ...Array(9).fill(429)], 'exactly 3 verified, the rest refused')
  })

  // Alone (not buffered, so not beside the others): its 64 logins would keep this process's event
  // loop so busy that the other tests' Redis replies could wait past the 800 ms command timeout.
  t.test(`${mode}: busy callers: 64 concurrent correct logins from distinct addresses all succeed`, { buffered: false }, async (t) => {
    // The default threshold: at most 10 attempts in flight for the account at any moment.
    const [a, b] = await replicas(t, { ...LONG_WAITS, ACCOUNT_THROTTLE_THRESHOLD: '10' })
    await addUser(a, 'svc', PASSWORD)
    const started = Date.now()
    const burst = await Promise.all(Array.from({ length: 64 }, (_, i) => attempt(i % 2 === 0 ? a : b, 'svc', PASSWORD)))
    t.same(burst.map((response) => response.statusCode), Array(64).fill(200), `all 64 got in (${Date.now() - started} ms)`)
  })

  t.test(`${mode}: no lockout by strangers: the owner's known address gets in first time while an attacker times Retry-After`, async (t) => {
    const [a, b] = await replicas(t)
    await addUser(a, 'alice', PASSWORD)
    const home = freshAddress()
    t.equal((await attempt(a, 'alice', PASSWORD, home)).statusCode, 200, 'the owner logs in once from home')

    const attackers = Array.from({ length: 20 }, freshAddress)
    let guesses = 0
    let verified = 0
    for (let round = 0; round < 4; round++) {
      // The attacker guesses until refused, then fires again the moment Retry-After ends.
      let refused
      while (refused === undefined) {
        const response = await attempt(guesses % 2 === 0 ? a : b, 'alice', `guess ${guesses}`, attackers[guesses % 20])
        guesses++
        if (response.statusCode === 401) verified++
        else refused = response
      }
      t.equal(refused.statusCode, 429, `round ${round}: the attacker is held back`)
      t.equal((await attempt(b, 'alice', PASSWORD, home)).statusCode, 200, `round ${round}: the owner gets in from home at once`)
      await honourRetryAfter(refused)
      const [guess, owner] = await Promise.all([
        attempt(a, 'alice', `guess ${guesses++}`, attackers[guesses % 20]),
        attempt(b, 'alice', PASSWORD, home)
      ])
      if (guess.statusCode === 401) verified++
      t.equal(owner.statusCode, 200, `round ${round}: the owner gets in as the attacker re-arms the wait`)
    }
    t.equal(verified, 3 + 4, 'the attacker got the threshold, then one guess per wait: the owner\'s successes reset nothing')
    t.equal((await attempt(a, 'alice', PASSWORD, freshAddress())).statusCode, 429, 'from an unknown address the owner waits like anyone else')
  })

  t.test(`${mode}: a success forgets only its own failures; a trusted address meets its own`, async (t) => {
    const [a, b] = await replicas(t, LONG_WAITS)
    await addUser(a, 'alice', PASSWORD)
    const laptop = freshAddress()
    for (let i = 0; i < 2; i++) t.equal((await attempt(a, 'alice', 'typo', laptop)).statusCode, 401)
    t.equal((await attempt(b, 'alice', PASSWORD, laptop)).statusCode, 200, 'the owner gets in')
    const stranger = freshAddress()
    t.equal((await attempt(a, 'alice', 'guess 1', stranger)).statusCode, 401)
    t.equal((await attempt(a, 'alice', 'guess 2', stranger)).statusCode, 401, 'the owner\'s own two failures were forgotten')
    t.equal((await attempt(b, 'alice', 'guess 3', freshAddress())).statusCode, 401)
    t.equal((await attempt(b, 'alice', 'guess 4', freshAddress())).statusCode, 429, 'the strangers\' three were not')
    t.equal((await attempt(a, 'alice', PASSWORD, laptop)).statusCode, 200, 'the trusted laptop is not held back by them')
    t.equal((await attempt(a, 'alice', 'guess 5', freshAddress())).statusCode, 429, 'and its success did not reset them')

    for (let i = 0; i < 3; i++) t.equal((await attempt(b, 'alice', 'typo', laptop)).statusCode, 401)
    t.equal((await attempt(a, 'alice', PASSWORD, laptop)).statusCode, 429, 'the trusted laptop waits after its own failures')
  })

  t.test(`${mode}: a distributed guesser cannot tell whether the account exists, however often the owner logs in`, async (t) => {
    const [a, b] = await replicas(t, LONG_WAITS)
    await addUser(a, 'alice', PASSWORD)
    const home = freshAddress()
    const sequence = async (username: string) => {
      const statuses = []
      for (let i = 0; i < 6; i++) {
        if (username === 'alice') await attempt(b, 'alice', PASSWORD, home)
        statuses.push((await attempt(a, username, `guess ${i}`)).statusCode)
      }
      return statuses
    }
    const real = await sequence('alice')
    t.same(real, [401, 401, 401, 429, 429, 429], 'the threshold, then waits')
    t.same(await sequence('nobody-here'), real, 'an unknown username answers alike')
  })
}

t.test('Redis: records are keyed hashes under one hash tag per account, each living only as long as it can change an answer', async (t) => {
  const { env } = await redisMode(t)
  const app = await buildTestApp(t, { ...THROTTLE, ...env })
  const redis = app.redis!
  await addUser(app, 'alice', PASSWORD)
  t.equal((await attempt(app, 'ghost', 'password typed as username')).statusCode, 401)
  const [single] = await redis.keys('auth:throttle:*')
  t.match(single, /^auth:throttle:\{[A-Za-z0-9_-]{22}\}$/, 'one hash-tagged key for one failure')
  t.notMatch(single, /ghost/)
  const pttl = await redis.pttl(single)
  t.ok(pttl > FAILURE_WINDOW_MS - 60_000 && pttl <= FAILURE_WINDOW_MS, `a single failure is kept ${pttl} ms, at most an hour`)
  t.equal(await redis.exists(`${single}:in-flight`), 0, 'nothing stays in flight')

  for (let i = 0; i < 5; i++) await attempt(app, 'alice', `guess ${i}`)
  await attempt(app, 'alice', PASSWORD, '10.250.0.1')
  const keys = await redis.keys('auth:throttle:*')
  for (const key of keys) {
    const ttl = await redis.pttl(key)
    t.ok(ttl > 0, `${key} expires`)
    t.ok(ttl <= (key.endsWith(':trusted') ? 30 * 86_400_000 : 2000 + FAILURE_WINDOW_MS), `${key} lives at most the back-off cap plus the window (or the trust)`)
  }
  t.equal(new Set(keys.map((key) => /\{(.*)\}/.exec(key)?.[1])).size, 2, 'one hash tag per account')
  const fields = Object.keys(await redis.hgetall(keys.find((key) => key !== single && !key.endsWith(':trusted'))!))
  t.notMatch(fields.join(' '), /10\.|alice/, 'client addresses are keyed hashes too')
})
