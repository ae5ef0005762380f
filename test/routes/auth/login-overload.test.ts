import { once } from 'node:events'
import { readFileSync, readdirSync } from 'node:fs'
import argon2 from 'argon2'
import type { FastifyInstance } from 'fastify'
import t from 'tap'
import { HASHING_THREAD_NICE, SPARE_THREADPOOL_THREADS, lowerThreadpoolPriority } from '../../../src/users/argon2-threads.ts'
import { loadConfig } from '../../../src/config.ts'
import { configuredPasswordHasher } from '../../../src/users/passwords.ts'
import { openStores } from '../../../src/storage/stores.ts'
import { PASSWORD, buildTestApp, startService, tempDir } from '../../helper.ts'
import { freePort } from '../../redis-server.ts'

const THREADS = 2
const QUEUE_MAX = 8

/** Logs in over real HTTP from its own client address. */
async function login (base: string, clientIp: string, username: string, password: string): Promise<{ status: number, retryAfter: string | null, body: unknown }> {
  const response = await fetch(`${base}/api/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-forwarded-for': clientIp },
    body: JSON.stringify({ username, password })
  })
  return { status: response.status, retryAfter: response.headers.get('retry-after'), body: await response.json() }
}

/** The value of one sample in a Prometheus text exposition, 0 when absent. */
function sample (text: string, name: string): number {
  const line = text.split('\n').find((candidate) => candidate.startsWith(`${name} `))
  return line === undefined ? 0 : Number(line.split(' ').pop())
}

async function metric (app: FastifyInstance, name: string): Promise<number> {
  return sample(await app.metrics.registry.metrics(), name)
}

/**
 * The time of one verification on this machine: the fastest of three, as a busy machine only ever
 * makes one slower, so each of the logins below takes at least this long on the one thread.
 */
async function verificationMs (app: FastifyInstance, hash: string): Promise<number> {
  const times: number[] = []
  for (let i = 0; i < 3; i++) {
    const started = performance.now()
    await app.passwords.verify(hash, PASSWORD)
    times.push(performance.now() - started)
  }
  return Math.min(...times)
}

/** Each thread of a process with its name and nice value, from /proc (Linux). */
function readdirTasks (pid: number): Array<{ name: string, nice: number }> {
  return readdirSync(`/proc/${pid}/task`).map((tid) => {
    const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8')
    // After the name in parentheses, nice is the 17th field (field 19 of the line).
    return { name: readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim(), nice: Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]) }
  })
}

/** One hash on this machine now: the slower of two medians of 3 argon2 verifications with the default parameters, in this process. */
async function oneHashMs (): Promise<number> {
  // At the priority the server hashes at, which on a busy machine makes a hash slower.
  await lowerThreadpoolPriority()
  const hash = await argon2.hash(PASSWORD, { type: argon2.argon2id, memoryCost: 19456, timeCost: 2, parallelism: 1 })
  const median = async () => {
    const times: number[] = []
    for (let i = 0; i < 3; i++) {
      const started = performance.now()
      await argon2.verify(hash, PASSWORD)
      times.push(performance.now() - started)
    }
    return times.sort((a, b) => a - b)[1]
  }
  return Math.max(await median(), await median())
}

t.test('the server process: 200 concurrent logins against a 2-thread pool answered 200, 401 or an immediate 503', async (t) => {
  const dataDir = await tempDir(t)
  const env = { DATA_DIR: dataDir, LOG_LEVEL: 'info' }
  // The user written where the server will read it, as the users CLI would, without a process of its own.
  const now = Date.now()
  await openStores(loadConfig(env)).durable.users.create({ username: 'alice', passwordHash: await configuredPasswordHasher(loadConfig({})).hash(PASSWORD), createdAt: now, updatedAt: now })
  const started = performance.now()
  const [port, metricsPort] = [await freePort(), await freePort()]
  const server = await startService(t, {
    ...env,
    PORT: String(port),
    HOST: '127.0.0.1',
    METRICS_PORT: String(metricsPort),
    ARGON2_THREADS: String(THREADS),
    LOGIN_QUEUE_MAX: String(QUEUE_MAX),
    TRUST_PROXY: '127.0.0.1',
    // Every attempt from its own address; up to 100 for alice stays under the throttle.
    ACCOUNT_THROTTLE_THRESHOLD: '100'
  })
  const base = `http://127.0.0.1:${port}`
  t.comment(`server up after ${((performance.now() - started) / 1000).toFixed(1)} s`)
  const metrics = async () => await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text()

  // libuv's pool: the hashing threads and the spares, at a lower priority than the event loop.
  const pool = readdirTasks(server.pid ?? 0).filter((thread) => thread.name === 'libuv-worker')
  t.equal(pool.length, THREADS + SPARE_THREADPOOL_THREADS, 'libuv threads: ARGON2_THREADS + spares')
  t.ok(pool.every((thread) => thread.nice === HASHING_THREAD_NICE), `libuv threads at nice ${HASHING_THREAD_NICE}`)

  // One login of each kind first: the dummy hash for unknown users is made on first use, not in the burst.
  t.equal((await login(base, '10.0.0.1', 'nobody', 'wrong password')).status, 401)
  t.equal((await login(base, '10.0.0.2', 'alice', PASSWORD)).status, 200)
  const before = await metrics()

  let bursting = true
  const healthMs: number[] = []
  const probing = (async () => {
    // eslint-disable-next-line no-unmodified-loop-condition -- the burst below ends it
    while (bursting) {
      const started = performance.now()
      t.equal((await fetch(`${base}/health/live`)).status, 200)
      healthMs.push(performance.now() - started)
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
  })()
  const results = await Promise.all(Array.from({ length: 200 }, (_, i) => i < 100
    ? login(base, `10.1.0.${i}`, 'alice', i % 2 === 0 ? PASSWORD : 'wrong password')
    : login(base, `10.2.0.${i}`, `unknown-${i}`, PASSWORD)))
  bursting = false
  await probing
  t.comment(`burst answered after ${((performance.now() - started) / 1000).toFixed(1)} s`)
  const after = await metrics()

  const count = (status: number) => results.filter((result) => result.status === status).length
  t.same(results.filter((result) => ![200, 401, 503].includes(result.status)).map((result) => result.status), [], 'every answer is 200, 401 or 503')
  t.ok(count(200) > 0 && count(401) > 0, `some were verified (${count(200)} x 200, ${count(401)} x 401)`)
  const shed = results.filter((result) => result.status === 503)
  t.ok(shed.length > 0, `some were shed (${shed.length} x 503)`)
  t.ok(shed.every((result) => result.retryAfter === '1'), 'each 503 carries Retry-After')
  t.same(shed[0]?.body, { message: 'Too many logins in progress, retry shortly' })

  const delta = (name: string) => sample(after, name) - sample(before, name)
  t.equal(delta('auth_argon2_duration_seconds_count{operation="verify"}'), count(200) + count(401), 'a shed login costs no hashing')
  t.equal(delta('auth_login_shed_total{reason="queue_full"}'), shed.length, 'each shed login is counted')
  t.equal(delta('auth_login_attempts_total{outcome="shed"}'), shed.length, 'counted as shed')
  t.equal(delta('auth_login_attempts_total{outcome="unavailable"}'), 0, 'not as a Redis failure')

  // The server's own time for each attempt (its audit line): a verified login waited for at most
  // QUEUE_MAX others on THREADS threads, then for its own hash; a shed one for none. Unbounded, the
  // last of the burst would wait for about 100 hashes. One hash is the slower of one timed here
  // after the burst and the fastest verified login of the burst (one that found a thread free):
  // the hashing threads run at a low priority, so on a machine busy with other work a hash in the
  // burst can take many times one timed a moment later. The bound gets three times each wait and
  // two seconds.
  // An audit line is written after its response is sent, and the log stream is asynchronous: the
  // last lines of the burst reach the pipe a moment after the last answer.
  const auditLines = () => server.output().split('\n').filter((line) => line.includes('"audit":"login"'))
  const linesBy = Date.now() + 10_000
  while (auditLines().length < 202 && Date.now() < linesBy) await Promise.race([once(server.stdout!, 'data'), new Promise((resolve) => setTimeout(resolve, 100))])
  const audits = auditLines().map((line) => JSON.parse(line) as { statusCode: number, outcome: string, responseTime: number }).slice(2)
  t.equal(audits.length, 200)
  t.same([...new Set(audits.filter((audit) => audit.statusCode === 503).map((audit) => audit.outcome))], ['shed'], 'the audit line of a shed login says shed')
  const hashMs = await oneHashMs()
  const fastestVerifiedMs = Math.min(...audits.filter((audit) => audit.statusCode !== 503).map((audit) => audit.responseTime))
  const boundMs = 3 * (QUEUE_MAX / THREADS + 1) * Math.max(hashMs, fastestVerifiedMs) + 2000
  const slowest = Math.max(...audits.map((audit) => audit.responseTime))
  t.ok(slowest < boundMs, `slowest login ${slowest.toFixed(0)} ms < ${boundMs.toFixed(0)} ms (one hash: ${hashMs.toFixed(0)} ms timed after the burst, ${fastestVerifiedMs.toFixed(0)} ms the fastest verified login in it)`)
  const shedMs = audits.filter((audit) => audit.statusCode === 503).map((audit) => audit.responseTime).sort((a, b) => a - b)
  t.ok(shedMs[Math.floor(shedMs.length / 2)] < hashMs, `a 503 waits for no hash: median ${shedMs[Math.floor(shedMs.length / 2)]?.toFixed(0)} ms, slowest ${shedMs.at(-1)?.toFixed(0)} ms`)

  const sorted = [...healthMs].sort((a, b) => a - b)
  const healthMedian = sorted[Math.floor(sorted.length / 2)]
  t.ok(sorted.length > 0 && healthMedian < hashMs, `/health/live median ${healthMedian?.toFixed(0)} ms, max ${sorted.at(-1)?.toFixed(0)} ms during the burst: faster than one login`)
})

t.test('a login whose turn comes after its deadline (requestTimeout) is answered 503 without hashing', async (t) => {
  // One thread and a costlier hash, so that logins queue well past the short deadline set below.
  const app = await buildTestApp(t, { ARGON2_THREADS: '1', LOGIN_QUEUE_MAX: '100', ARGON2_TIME_COST: '6', RATE_LIMIT_MAX: '1000' })
  const hash = await app.passwords.hash(PASSWORD)
  const now = Date.now()
  for (let i = 0; i < 10; i++) await app.users.create({ username: `user-${i}`, passwordHash: hash, createdAt: now, updatedAt: now })
  const hashMs = await verificationMs(app, hash)
  // The deadline is the request's arrival plus the server's requestTimeout: here one and a half hashes.
  app.server.requestTimeout = Math.ceil(1.5 * hashMs)
  const verificationsBefore = await metric(app, 'auth_argon2_duration_seconds_count{operation="verify"}')

  const responses = await Promise.all(Array.from({ length: 10 }, (_, i) => app.inject({
    method: 'POST',
    url: '/api/auth/login',
    headers: { 'content-type': 'application/json' },
    payload: JSON.stringify({ username: `user-${i}`, password: PASSWORD })
  })))
  const statuses = responses.map((response) => response.statusCode)
  const late = statuses.filter((status) => status === 503).length
  t.ok(statuses.every((status) => status === 200 || status === 503), `200 or 503: ${statuses.join(', ')}`)
  t.ok(late < 10, 'the first in line was hashed')
  t.ok(late >= 4, `the later ones waited past the deadline (${late} of 10)`)
  t.equal(await metric(app, 'auth_login_shed_total{reason="deadline"}'), late)
  t.equal(await metric(app, 'auth_argon2_duration_seconds_count{operation="verify"}') - verificationsBefore, 10 - late, 'the late ones were not hashed')
  t.same(responses.find((response) => response.statusCode === 503)?.json(), { message: 'Too many logins in progress, retry shortly' })
})
