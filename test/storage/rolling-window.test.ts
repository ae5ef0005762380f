import { setTimeout as sleep } from 'node:timers/promises'
import fastifyRateLimit, { type FastifyRateLimitStore, type FastifyRateLimitStoreCtor } from '@fastify/rate-limit'
import Fastify from 'fastify'
import t, { type Test } from 'tap'
import { loadConfig } from '../../src/config.ts'
import { LocalRollingWindowStore } from '../../src/storage/memory/rolling-window.ts'
import { openRedisConnection, type RedisConnection } from '../../src/storage/redis/connection.ts'
import { openStores } from '../../src/storage/stores.ts'
import { startRedisServer, type RedisServer } from '../redis-server.ts'
import { STORE_MODES } from './store-modes.ts'

const WINDOW = 1000
const MAX = 3
// Redis's TIME and Date.now() read the same clock, each rounded down to the millisecond.
const CLOCK_SLACK = 2

/** A login attempt's outcome, with the wall-clock span in which the store made it. */
interface Attempt {
  current: number
  ttl: number
  before: number
  after: number
}

async function attempt (store: FastifyRateLimitStore, key = '10.0.0.1'): Promise<Attempt> {
  const before = Date.now()
  const result = await new Promise<{ current: number, ttl: number }>((resolve, reject) => {
    store.incr(key, (err, res) => { res === undefined ? reject(err) : resolve(res) }, WINDOW, MAX)
  })
  return { ...result, before, after: Date.now() }
}

async function attempts (store: FastifyRateLimitStore, count: number): Promise<Attempt[]> {
  const made: Attempt[] = []
  for (let i = 0; i < count; i++) made.push(await attempt(store))
  return made
}

async function sleepUntil (at: number): Promise<void> {
  await sleep(Math.max(0, at - Date.now()))
}

/**
 * A rejected attempt's ttl is the time from it until the oldest counted attempt leaves the window.
 * An attempt rejected from memory after `blocking` was rejected by Redis may say up to that
 * attempt's round trip less (the block runs from when it was sent, so it never outlasts Redis's).
 */
function assertTtlUntilOldestLeaves (t: Test, rejected: Attempt, oldest: Attempt, blocking?: Attempt): void {
  const early = blocking === undefined ? 0 : blocking.after - blocking.before
  const earliest = oldest.before + WINDOW - rejected.after - CLOCK_SLACK - early
  const latest = oldest.after + WINDOW - rejected.before + CLOCK_SLACK
  t.ok(rejected.ttl >= earliest && rejected.ttl <= latest, `ttl ${rejected.ttl} in [${earliest}, ${latest}]`)
}

function newStore (Store: FastifyRateLimitStoreCtor): FastifyRateLimitStore {
  return new Store({})
}

async function waitUntilReady (redis: RedisConnection): Promise<void> {
  const deadline = Date.now() + 5000
  while (redis.status !== 'ready') {
    if (Date.now() > deadline) throw new Error(`redis connection still ${redis.status}`)
    await sleep(20)
  }
}

// The per-IP limit's store (a rolling window) as the service opens it, on every mode: this
// process, and Redis on each topology.
for (const [mode, emptyStores] of Object.entries(STORE_MODES)) {
  /** A store class with no attempts yet, as @fastify/rate-limit is given it. */
  const freshStoreClass = async (t: Test): Promise<FastifyRateLimitStoreCtor> => (await emptyStores(t)).stores.transient.rateLimit
  t.test(`${mode} rate-limit store`, async (t) => {
    t.test('admits max attempts, then rejects with the time until the oldest leaves the window', async (t) => {
      const store = newStore(await freshStoreClass(t))
      const admitted = await attempts(store, MAX)
      t.same(admitted.map((a) => a.current), [1, 2, 3])
      t.equal(admitted[0].ttl, WINDOW, 'the first attempt is the oldest, leaving a whole window')
      const rejected = await attempt(store)
      t.equal(rejected.current, MAX + 1)
      assertTtlUntilOldestLeaves(t, rejected, admitted[0])
    })

    t.test('does not count rejected attempts', async (t) => {
      const store = newStore(await freshStoreClass(t))
      const admitted = await attempts(store, MAX)
      await sleep(WINDOW / 2)
      const rejected = await attempts(store, 5)
      t.ok(rejected.every((a) => a.current === MAX + 1), 'hammering is rejected')
      await sleepUntil(admitted[MAX - 1].after + WINDOW + 20)
      const retried = await attempt(store)
      t.equal(retried.current, 1, 'with the admitted attempts gone the window is empty, although the rejected ones are recent')
    })

    t.test('admits exactly one more attempt when the oldest leaves the window, never 2*max around a window edge', async (t) => {
      const store = newStore(await freshStoreClass(t))
      const opening = await attempt(store)
      // A fixed window opened by the first attempt would reset at its edge and admit all of these.
      await sleepUntil(opening.after + WINDOW - 150)
      const beforeEdge = await attempts(store, MAX - 1)
      await sleepUntil(opening.after + WINDOW + 50)
      const afterEdge = await attempts(store, MAX)
      t.same(afterEdge.map((a) => a.current <= MAX), [true, false, false], 'one admitted as the opening attempt left, then rejected again')
      const admittedAroundEdge = [...beforeEdge, ...afterEdge].filter((a) => a.current <= MAX)
      t.equal(admittedAroundEdge.length, MAX, `${2 * MAX - 1} attempts within 200 ms across the edge admit only max`)
      assertTtlUntilOldestLeaves(t, afterEdge[MAX - 1], beforeEdge[0], afterEdge[MAX - 2])
    })

    t.test('admits only max of simultaneous attempts', async (t) => {
      const store = newStore(await freshStoreClass(t))
      const simultaneous = await Promise.all(Array.from({ length: 2 * MAX }, async () => await attempt(store)))
      t.same(simultaneous.map((a) => a.current).sort(), [1, 2, 3, 4, 4, 4])
    })

    t.test('counts each key separately', async (t) => {
      const store = newStore(await freshStoreClass(t))
      await attempts(store, MAX)
      t.equal((await attempt(store, '10.0.0.1')).current, MAX + 1)
      t.equal((await attempt(store, '10.0.0.2')).current, 1)
    })

    t.test('limits login attempts through @fastify/rate-limit, each route with its own limit counted separately', async (t) => {
      const app = Fastify()
      t.teardown(() => app.close())
      await app.register(fastifyRateLimit, { store: await freshStoreClass(t), max: MAX, timeWindow: WINDOW, skipOnError: false })
      app.post('/global', async () => 'ok')
      // Routes with their own rate-limit config get child stores.
      app.post('/login', { config: { rateLimit: { max: MAX, timeWindow: WINDOW } } }, async () => 'ok')
      app.post('/token', { config: { rateLimit: { max: MAX, timeWindow: WINDOW } } }, async () => 'ok')

      const statuses = async (url: string, count: number): Promise<number[]> => {
        const codes: number[] = []
        for (let i = 0; i < count; i++) codes.push((await app.inject({ method: 'POST', url })).statusCode)
        return codes
      }
      t.same(await statuses('/login', MAX), [200, 200, 200])
      const limited = await app.inject({ method: 'POST', url: '/login' })
      t.equal(limited.statusCode, 429)
      t.equal(limited.headers['retry-after'], '1', 'the oldest attempt leaves the 1 s window within a second')
      t.same(await statuses('/token', MAX + 1), [200, 200, 200, 429], 'another route keeps its own count')
      t.same(await statuses('/global', MAX + 1), [200, 200, 200, 429], 'the global limit keeps its own count')
    })

    if (mode === 'embedded') return
    t.test('is one limit for every replica', async (t) => {
      const Store = await freshStoreClass(t)
      const [storeA, storeB] = [newStore(Store), newStore(Store)]
      t.same([(await attempt(storeA)).current, (await attempt(storeB)).current, (await attempt(storeA)).current], [1, 2, 3])
      t.equal((await attempt(storeB)).current, MAX + 1)
      t.equal((await attempt(storeA)).current, MAX + 1)
    })

    t.test('lets the log of an idle key expire when its newest attempt leaves the window', async (t) => {
      const { stores, redis, keyPrefix } = await emptyStores(t)
      await attempt(newStore(stores.transient.rateLimit), '10.0.0.1')
      const pttl = await redis!.pttl(`${keyPrefix}rate-limit:10.0.0.1`)
      t.ok(pttl > 0 && pttl <= WINDOW, `pttl ${pttl}`)
    })
  })
}

t.test('in-process store drops the logs of keys whose attempts have all left the window', async (t) => {
  const store = new LocalRollingWindowStore()
  const stale = await attempt(store, '10.0.0.1')
  await sleepUntil(stale.after + WINDOW + 20)
  await attempt(store, '10.0.0.2')
  t.same([...store['logs'].keys()], ['10.0.0.2'])
})

/** A Redis store on a redis-server of its own, which the test may stop and start. */
async function storeOnOwnRedis (t: Test): Promise<{ server: RedisServer, redis: RedisConnection, store: FastifyRateLimitStore }> {
  const server = await startRedisServer()
  const redis = await openRedisConnection(server.url)
  // Reconnect errors are expected while the server is down.
  redis.on('error', () => {})
  t.teardown(async () => {
    redis.disconnect()
    await server.stop()
  })
  return { server, redis, store: newStore(openStores(loadConfig({ REDIS_URL: server.url }), redis).transient.rateLimit) }
}

t.test('redis store', async (t) => {
  t.test('works again after Redis has dropped its scripts', async (t) => {
    const { redis, store } = await storeOnOwnRedis(t)
    t.equal((await attempt(store)).current, 1)
    await redis.script('FLUSH')
    t.equal((await attempt(store)).current, 2)
  })

  t.test('answers a rejected key from memory until its oldest attempt ages out', async (t) => {
    const { server, store } = await storeOnOwnRedis(t)
    const admitted = await attempts(store, MAX)
    t.equal((await attempt(store)).current, MAX + 1)

    // With Redis gone, only an answer from memory can still come back.
    await server.stop()
    const blocked = await attempt(store)
    t.equal(blocked.current, MAX + 1, 'still rejected, without Redis')
    t.ok(blocked.ttl <= admitted[0].after + WINDOW - blocked.before + CLOCK_SLACK, `ttl ${blocked.ttl} ends when the oldest attempt ages out`)
    await t.rejects(attempt(store, '10.0.0.2'), 'a key not known to be blocked needs Redis')
    await sleepUntil(admitted[0].after + WINDOW + CLOCK_SLACK)
    await t.rejects(attempt(store), 'after that time the key is asked of Redis again')
  })

  t.test('fails fast while Redis is down and recovers when it is back', async (t) => {
    const { server, redis, store } = await storeOnOwnRedis(t)
    t.equal((await attempt(store)).current, 1)

    await server.stop()
    const failing = Date.now()
    await t.rejects(attempt(store))
    t.ok(Date.now() - failing < 1000, 'the error comes within a second')

    await server.start()
    await waitUntilReady(redis)
    t.equal((await attempt(store)).current, 1, 'the script runs on the restarted, empty Redis')
  })
})
