// Login service benchmark, run on the built dist/ (`npm run bench` builds first).
//
// Starts everything it measures as child processes on free loopback ports, with temporary data and
// the default settings (LOG_LEVEL=info as in production): Redis-mode replicas against a throwaway
// redis-server (embedded mode instead when redis-server is not installed), the service in
// embedded mode (with the default costs and with cheap hashing), a bare Fastify server, and bare
// argon2.verify loops. Then:
//   1. logins/s at saturation (right password, limiter on, every login from its own client IP,
//      16 connections) against raw argon2.verify/s with the same parameters, threads and priority,
//      each side at its steady rate, between the first and the last completion of each slice;
//      and, with cheap hashing (8 connections, embedded), the main thread's CPU per login answered
//      beside raw argon2.verify's per verification, so the event loop's cost cannot hide behind the hash;
//      beside both, the login floor (bench/login-floor-server.mjs: bare Fastify running only the
//      hash) under the same load, at the default and the cheap hashing cost;
//   2. p99 latency of GET /health/live and /health/ready, one probe every 50 ms on a new connection
//      each (as a kubelet probes) and as many on one kept-alive connection, while logins saturate
//      (from each slice's first login answered to its end), both routes in the same slices, taking turns;
//      beside them the floor: bare Fastify's /health/live probed both ways while raw argon2.verify
//      keeps the cores as busy;
//   3. 429 rejections/s (one client IP over its limit) against a bare Fastify route sending the
//      same 429 response (bench/bare-server.mjs says why);
//   4. overload: bursts of 200 concurrent logins against the default hashing pool and queue, each
//      on its connection; the p99 of the 503s they are shed with, the slowest login answered
//      otherwise, and the p99 of GET /health/live probed every 10 ms during each burst; beside them
//      the same bursts and probes against the bare Fastify route, their floor on this machine;
//   5. the peak RSS (VmHWM) under login saturation of the service started three ways: with the
//      image's environment (the Dockerfile's MALLOC_ARENA_MAX and NODE_OPTIONS), as `node
//      dist/server.js` without it (the docs' systemd unit), and through `npm start`; beside it the
//      login floor's, with the image's environment.
// Logins and probes go to a replica that does nothing else, since a burst or a flood leaves the
// heap grown for a while; 429s go to another replica and to embedded mode, the bursts to embedded.
// The machine is shared, so each round cuts every measurement into 1 s slices that take turns:
// what is compared sees the same moments. The table shows each round and the median of rounds.
// Exits 0 whether or not targets are met, 1 when something broke (an unexpected status, a child
// that failed). BENCH_ROUNDS (5) and BENCH_SECONDS (3, per measurement per round) override the length.
import { spawn } from 'node:child_process'
import { Agent, request as httpRequest } from 'node:http'
import { availableParallelism } from 'node:os'
import path from 'node:path'
import { createInterface } from 'node:readline'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import autocannon from 'autocannon'
import { loadConfig } from '../dist/config.js'
import { SPARE_THREADPOOL_THREADS, hashingCapacity } from '../dist/users/argon2-threads.js'
import {
  BARE_SERVER_SCRIPT, HOST, KEYS_CLI, ROOT, SERVER_SCRIPT, countOnly, cpuSeconds, formatRate, formatRatio, median, percentile,
  perCpuSecond, perSecond, positiveInteger, printReport, progress, request, rssMiB, run, runBenchmark, serviceEnv as withoutServiceSettings,
  startRedis, startServer, takeTurns, tally, track, verdict, workPath
} from './harness.mjs'

const USERS_CLI = path.join(ROOT, 'dist', 'cli', 'users.js')
const VERIFY_LOOP_SCRIPT = fileURLToPath(new URL('argon2-verify-loop.mjs', import.meta.url))
const LOGIN_FLOOR_SCRIPT = fileURLToPath(new URL('login-floor-server.mjs', import.meta.url))

const ROUNDS = positiveInteger('BENCH_ROUNDS', 5)
const SLICES = positiveInteger('BENCH_SECONDS', 3)
const SLICE_SECONDS = 1
// Well over the hashes that run at once, as a busy service sees them.
const LOGIN_CONNECTIONS = 16
const CHEAP_LOGIN_CONNECTIONS = 8
// Cheap enough that the event loop's own work per login is a large share of the CPU.
const CHEAP_HASHING = { ARGON2_MEMORY_KIB: '8192', ARGON2_TIME_COST: '1' }
// Far more than the hashing threads and the queue hold: most of these are shed.
const BURST_LOGINS = 200
const BURST_PROBE_INTERVAL_MS = 10
const FLOOD_CONNECTIONS = 10
const PROBE_INTERVAL_MS = 50

const TARGETS = {
  loginPerRaw: 0.95,
  mainThreadMsPerLogin: 0.5,
  rejectionsPerBare: 0.8,
  healthP99Ms: 10,
  shedP99Ms: 250,
  peakRssMiB: 150
}

// The environment the Dockerfile gives the service (it says why), unless this shell sets it.
const IMAGE_ENV = {
  MALLOC_ARENA_MAX: process.env.MALLOC_ARENA_MAX ?? '1',
  NODE_OPTIONS: process.env.NODE_OPTIONS ?? '--max-semi-space-size=8'
}

const LOGIN_PATH = '/api/auth/login'
const USERNAME = 'bench-user'
const PASSWORD = `bench ${crypto.randomUUID()}`
const LOGIN_REQUEST = {
  method: 'POST',
  path: LOGIN_PATH,
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify({ username: USERNAME, password: PASSWORD })
}

/** The argon2.verify loop, kept running between slices so that a slice measures only verifying. */
async function startVerifyLoop (config, threads) {
  const env = { ...process.env, ...IMAGE_ENV, UV_THREADPOOL_SIZE: String(threads + SPARE_THREADPOOL_THREADS) }
  const child = track(spawn(process.execPath, [VERIFY_LOOP_SCRIPT, config.ARGON2_MEMORY_KIB, config.ARGON2_TIME_COST, config.ARGON2_PARALLELISM, threads].map(String), { cwd: ROOT, env, stdio: ['pipe', 'pipe', 'pipe'] }))
  let errorOutput = ''
  child.stderr.on('data', (chunk) => { errorOutput += chunk })
  const answers = createInterface({ input: child.stdout })[Symbol.asyncIterator]()
  return {
    pid: child.pid,
    async verifyFor (seconds) {
      child.stdin.write(`${seconds}\n`)
      const { done, value } = await answers.next()
      if (done) throw new Error(`the argon2.verify loop exited with ${child.exitCode ?? child.signalCode}:\n${errorOutput}`)
      return JSON.parse(value)
    }
  }
}

/**
 * Waits until the service has worked off its queue: a login sent now waits behind everything
 * queued (the queue is first in, first out), so once it is answered other than 503, the queue is
 * empty. An unknown user from a new client IP, so that neither the limit nor the throttle answers.
 */
async function drain (service) {
  while (true) {
    const ip = newClientIp()
    // On a very busy machine the wait can outlast the server's 10 s connection timeout: try again.
    const response = await request(`${service.url}${LOGIN_PATH}`, { method: 'POST', headers: { ...LOGIN_REQUEST.headers, 'x-forwarded-for': ip }, body: JSON.stringify({ username: `unknown-${ip}`, password: PASSWORD }) }).catch(() => ({ status: 503 }))
    if (response.status !== 503) return
    await sleep(100)
  }
}

// ---------- the service's environment ----------

/**
 * The service's environment: the shell's ARGON2_* costs are kept (so the bench can be pointed at
 * other costs), every other service setting in the shell is dropped; the image's environment
 * unless `imageEnv` is false, and then none of it from the shell either.
 */
function serviceEnv (settings, { imageEnv = true } = {}) {
  // 16 concurrent logins of one user would otherwise meet the per-username throttle, which counts
  // each attempt as a failure until it succeeds (threshold 10): the throttle is not measured here.
  const env = withoutServiceSettings({ ...(imageEnv ? IMAGE_ENV : {}), TRUST_PROXY: HOST, LOG_LEVEL: 'info', ACCOUNT_THROTTLE_THRESHOLD: '100', ...settings }, (name) => name.startsWith('ARGON2_'))
  if (!imageEnv) for (const name of Object.keys(IMAGE_ENV)) delete env[name]
  return env
}

async function addUser (env) {
  await run([USERS_CLI, 'add', USERNAME], { env, input: `${PASSWORD}\n` })
}

// ---------- measurements ----------

let clientNumber = 0
/** A client IP not used before in this run, so the limiter has never seen it. */
function newClientIp () {
  clientNumber++
  return `10.${(clientNumber >> 16) & 255}.${(clientNumber >> 8) & 255}.${clientNumber & 255}`
}

/**
 * GET a health route every `intervalMs` for `seconds`, every response time kept in `latenciesMs`,
 * sent on schedule whether or not the one before has been answered: each probe on a new connection
 * as the kubelet probes, or all on one kept-alive connection (a probe sent before the one before is
 * answered waits for it, and that wait counts). Not autocannon: the first response on each of its
 * connections includes the load generator's own start-up (19-38 ms on this machine against an idle
 * server, while every later one took under 8 ms), and with a new instance per slice that start-up
 * would be the p99. From when `after` settles, when given, and until `until` settles, when given,
 * rather than for `seconds`; the first probe `offsetMs` after the start, so that two routes probed
 * in one slice take turns.
 */
async function probeHealth (service, route, latenciesMs, { keptAlive = false, intervalMs = PROBE_INTERVAL_MS, seconds = SLICE_SECONDS, after, until, offsetMs = 0 } = {}) {
  const agent = keptAlive ? new Agent({ keepAlive: true, maxSockets: 1 }) : undefined
  let done = false
  const stop = () => { done = true }
  until?.then(stop, stop)
  await after
  const start = performance.now() + offsetMs
  const probes = []
  for (let sent = 0; until === undefined ? sent < seconds * 1000 / intervalMs : !done; sent++) {
    await sleep(Math.max(0, start + sent * intervalMs - performance.now()))
    const sentAt = performance.now()
    probes.push((keptAlive ? getKeptAlive(`${service.url}${route}`, agent) : request(`${service.url}${route}`)).then((response) => {
      if (response.status !== 200) throw new Error(`GET ${route} on ${service.name} answered ${response.status}`)
      latenciesMs.push(performance.now() - sentAt)
    }))
  }
  await Promise.all(probes).finally(() => agent?.destroy())
}

/** A GET through a keep-alive agent, the body read in full. */
function getKeptAlive (url, agent) {
  return new Promise((resolve, reject) => {
    httpRequest(url, { agent }, (response) => {
      response.resume()
      response.on('end', () => resolve({ status: response.statusCode }))
      response.on('error', reject)
    }).on('error', reject).end()
  })
}

/**
 * One slice of logins with the right password, each from a new client IP, with health probes
 * meanwhile (each `probes` entry: a route, options for probeHealth, and where its latencies go):
 * from the first login answered to the end of the logins, the steady state. Before it, the load
 * generator is opening its connections at once, and that moment was the p99 of every slice (a
 * probe sent within 2 ms of the start took 8-17 ms, where the others took under 9): a burst of
 * new connections, which row 4 measures.
 */
async function loginSlice (service, logins, { connections = LOGIN_CONNECTIONS, probes = [] } = {}) {
  const cpuBefore = cpuSeconds(service.pid)
  const mainThreadCpuBefore = cpuSeconds(service.pid, { mainThreadOnly: true })
  const attemptsBefore = service.floor ? 0 : await loginAttempts(service)
  const loginRun = autocannon({
    url: service.url,
    connections,
    duration: SLICE_SECONDS,
    requests: [{
      ...LOGIN_REQUEST,
      setupRequest: (request) => {
        request.headers['x-forwarded-for'] = newClientIp()
        return request
      }
    }]
  })
  const completedAt = []
  let firstAnswered
  const answered = new Promise((resolve) => { firstAnswered = resolve })
  loginRun.on('response', (_client, status) => {
    if (status !== 200) return
    completedAt.push(performance.now())
    firstAnswered()
  })
  // Should none be answered, the probes start (and stop) as the logins end.
  loginRun.then(firstAnswered, firstAnswered)
  // RSS every 20 ms: each hash holds its argon2 memory for longer than that.
  const sampler = setInterval(() => { logins.peakRss = Math.max(logins.peakRss, rssMiB(service.pid) ?? NaN) }, 20)
  const [loginResult] = await Promise.all([loginRun, ...probes.map(({ route, options, latenciesMs }) => probeHealth(service, route, latenciesMs, { ...options, after: answered, until: loginRun }))])
    .finally(() => clearInterval(sampler))
  logins.count += countOnly(loginResult, 200, `logins on ${service.name}`, true)
  logins.seconds += loginResult.duration
  addSteadyState(logins, completedAt)
  await drain(service)
  logins.cpuSeconds += cpuSeconds(service.pid) - cpuBefore
  logins.mainThreadCpuSeconds += cpuSeconds(service.pid, { mainThreadOnly: true }) - mainThreadCpuBefore
  // The login floor has no metrics: every login it answered is one of autocannon's or the drain's.
  logins.attempts += service.floor ? loginResult['2xx'] + loginResult.non2xx + 1 : await loginAttempts(service) - attemptsBefore
}

/** Login attempts the service has answered so far, all outcomes (auth_login_attempts_total). */
async function loginAttempts (service) {
  const metrics = await (await fetch(service.metricsUrl)).text()
  return metrics.split('\n').filter((line) => line.startsWith('auth_login_attempts_total{')).reduce((sum, line) => sum + Number(line.split(' ').pop()), 0)
}

/**
 * A burst of logins at once, each on its connection, from a new client IP for a new unknown
 * username (so that neither the limit nor the throttle answers), with GET /health/live probed
 * until the last is answered. Every answer must be 401 or the 503 of a shed login; the 503s'
 * latencies go to `burst.latenciesMs`, the others' to `burst.answeredMs`, the probes' to `live`.
 * The bare fastify route answers every one at once with its 429, counted as the 503s are: the
 * same burst and probes from the same client against it are the floor of both figures here.
 */
async function burstSlice (service, burst, live) {
  const shedStatus = service.bare ? 429 : 503
  const logins = Promise.all(Array.from({ length: BURST_LOGINS }, async () => {
    const ip = newClientIp()
    const sentAt = performance.now()
    const { status } = await request(`${service.url}${LOGIN_PATH}`, { method: 'POST', headers: { ...LOGIN_REQUEST.headers, 'x-forwarded-for': ip }, body: JSON.stringify({ username: `unknown-${ip}`, password: PASSWORD }) })
    if (status !== shedStatus && (service.bare || status !== 401)) throw new Error(`a burst on ${service.name}: a login answered ${status}, expected ${service.bare ? '' : '401 or '}${shedStatus}`)
    const latencyMs = performance.now() - sentAt
    if (status === shedStatus) {
      burst.count++
      burst.latenciesMs.push(latencyMs)
    } else {
      burst.answeredMs.push(latencyMs)
    }
  }))
  await Promise.all([logins, probeHealth(service, '/health/live', live, { intervalMs: BURST_PROBE_INTERVAL_MS, until: logins })])
  burst.attempts += BURST_LOGINS
  await drain(service)
}

async function verifySlice (verifyLoop, raw) {
  const mainThreadCpuBefore = cpuSeconds(verifyLoop.pid, { mainThreadOnly: true })
  const { verifications, seconds, cpuSeconds: cpuUsed, completedAt } = await verifyLoop.verifyFor(SLICE_SECONDS)
  raw.mainThreadCpuSeconds += cpuSeconds(verifyLoop.pid, { mainThreadOnly: true }) - mainThreadCpuBefore
  raw.count += verifications
  raw.attempts += verifications
  raw.seconds += seconds
  raw.cpuSeconds += cpuUsed
  addSteadyState(raw, completedAt)
}

/**
 * Adds a slice's completions between its first and last one to the tally's steady-state rate. A
 * slice's first login is answered only after autocannon has started (tens of ms here) and a whole
 * hash, and the hashes running when it ends are answered after it: timed over the whole slice, a
 * 1 s slice of logins loses about a tenth of its rate to its edges, where the verify loop loses
 * none. Between its first and last completion each side runs at its steady rate.
 */
function addSteadyState (into, completedAtMs) {
  if (completedAtMs.length < 2) return
  into.steadyCount += completedAtMs.length - 1
  into.steadySeconds += (completedAtMs[completedAtMs.length - 1] - completedAtMs[0]) / 1000
}

const steadyRate = ({ steadyCount, steadySeconds }) => steadyCount / steadySeconds

/** A client IP over its limit, made anew when the one before may be near the end of its window. */
async function overLimitClientIp (service, config) {
  if (service.overLimit !== undefined && Date.now() - service.overLimit.since < config.RATE_LIMIT_WINDOW_MS / 2) return service.overLimit.ip
  const ip = newClientIp()
  for (let attempt = 0; attempt <= config.RATE_LIMIT_MAX; attempt++) {
    const response = await request(`${service.url}${LOGIN_PATH}`, { method: 'POST', headers: { ...LOGIN_REQUEST.headers, 'x-forwarded-for': ip }, body: LOGIN_REQUEST.body })
    const expected = attempt < config.RATE_LIMIT_MAX ? 200 : 429
    if (response.status !== expected) throw new Error(`${service.name}: login attempt ${attempt + 1} from one IP answered ${response.status}, expected ${expected}`)
  }
  service.overLimit = { ip, since: Date.now() }
  return ip
}

/** One slice of the login request from one client IP: 429 from the service once over the limit, and from the bare server. */
async function floodSlice (target, config, flood) {
  const status = 429
  const ip = target.bare ? newClientIp() : await overLimitClientIp(target, config)
  const cpuBefore = cpuSeconds(target.pid)
  const result = await autocannon({
    url: target.url,
    connections: FLOOD_CONNECTIONS,
    duration: SLICE_SECONDS,
    requests: [{ ...LOGIN_REQUEST, headers: { ...LOGIN_REQUEST.headers, 'x-forwarded-for': ip } }]
  })
  flood.count += countOnly(result, status, `flood on ${target.name}`)
  flood.seconds += result.duration
  flood.cpuSeconds += cpuSeconds(target.pid) - cpuBefore
}

// A tenth of a millisecond where a target of 10 ms is judged, so 9.6 is not shown as 10.
const formatMs = (value) => `${value < 100 ? value.toFixed(1) : value.toFixed(0)} ms`

// ---------- the run ----------

async function main () {
  const embeddedEnv = serviceEnv({ DATA_DIR: workPath('embedded') })
  const config = loadConfig(embeddedEnv)
  const { threads, queueMax } = hashingCapacity(config)
  const cheapEnv = serviceEnv({ DATA_DIR: workPath('embedded-cheap-hashing'), ...CHEAP_HASHING })
  const cheapConfig = loadConfig(cheapEnv)

  progress('bench', 'creating the users and starting the services')
  await addUser(embeddedEnv)
  await addUser(cheapEnv)
  const embedded = await startServer('service-embedded', SERVER_SCRIPT, embeddedEnv)
  const cheap = await startServer('service-embedded-cheap-hashing', SERVER_SCRIPT, cheapEnv)
  const bare = { ...await startServer('bare-fastify', BARE_SERVER_SCRIPT, process.env), bare: true }
  const verifyLoop = await startVerifyLoop(config, threads)
  const startLoginFloor = async (name, floorConfig) => {
    const floorThreads = hashingCapacity(floorConfig).threads
    return {
      ...await startServer(name, LOGIN_FLOOR_SCRIPT, {
        ...process.env,
        ...IMAGE_ENV,
        UV_THREADPOOL_SIZE: String(floorThreads + SPARE_THREADPOOL_THREADS),
        ARGON2_MEMORY_KIB: String(floorConfig.ARGON2_MEMORY_KIB),
        ARGON2_TIME_COST: String(floorConfig.ARGON2_TIME_COST),
        ARGON2_PARALLELISM: String(floorConfig.ARGON2_PARALLELISM),
        FLOOR_IN_FLIGHT: String(floorThreads),
        FLOOR_PASSWORD: PASSWORD
      }),
      floor: true
    }
  }
  const loginFloor = await startLoginFloor('login-floor', config)
  const cheapLoginFloor = await startLoginFloor('login-floor-cheap-hashing', cheapConfig)
  const cheapVerifyLoop = await startVerifyLoop(cheapConfig, hashingCapacity(cheapConfig).threads)

  // Logins, health probes and their memory on instances that do nothing else (see the top), each
  // with a user of its own: in Redis mode under a key prefix of its own.
  const redisUrl = await startRedis()
  if (redisUrl === undefined) progress('bench', 'redis-server not found: Redis mode skipped, logins measured in embedded mode')
  const keyFile = workPath('jwt-signing-key.pem')
  if (redisUrl !== undefined) await run([KEYS_CLI, 'generate', keyFile], { env: embeddedEnv })
  const loginEnv = (name, options) => serviceEnv({
    DATA_DIR: workPath(name),
    ...(redisUrl === undefined ? {} : { REDIS_URL: redisUrl, REDIS_KEY_PREFIX: `${name}:`, JWT_PRIVATE_KEY_FILE: keyFile })
  }, options)
  const startLoginService = async (name, { imageEnv = true, npmStart = false } = {}) => {
    const env = loginEnv(name, { imageEnv })
    await addUser(env)
    return { ...await startServer(name, SERVER_SCRIPT, env, { npmStart }), env }
  }
  const mode = redisUrl === undefined ? 'embedded' : 'Redis mode'
  const service = await startLoginService('service-logins')
  const plain = await startLoginService('service-logins-plain', { imageEnv: false })
  const npmStarted = await startLoginService('service-logins-npm-start', { imageEnv: false, npmStart: true })
  const redisMode = redisUrl === undefined ? undefined : await startServer('service-redis', SERVER_SCRIPT, service.env)

  const login = await request(`${service.url}${LOGIN_PATH}`, { method: 'POST', headers: { ...LOGIN_REQUEST.headers, 'x-forwarded-for': newClientIp() }, body: LOGIN_REQUEST.body })
  const loginBody = login.json()
  if (login.status !== 200 || typeof loginBody.data?.accessToken !== 'string') throw new Error(`a login with the right password answered ${login.status} ${JSON.stringify(loginBody)}`)

  const floodTargets = [embedded, bare, ...(redisMode ? [redisMode] : [])]
  progress('bench', 'warming up')
  for (const target of [service, cheap, plain, npmStarted, loginFloor, cheapLoginFloor]) await loginSlice(target, tally(), { connections: [cheap, cheapLoginFloor].includes(target) ? CHEAP_LOGIN_CONNECTIONS : LOGIN_CONNECTIONS })
  await verifySlice(verifyLoop, tally())
  await verifySlice(cheapVerifyLoop, tally())
  for (const target of floodTargets) await floodSlice(target, config, tally())

  const rounds = []
  for (let round = 1; round <= ROUNDS; round++) {
    const r = {
      logins: tally(),
      raw: tally(),
      floorLogins: tally(),
      cheapLogins: tally(),
      cheapFloorLogins: tally(),
      cheapRaw: tally(),
      plainLogins: tally(),
      npmLogins: tally(),
      burst: { ...tally(), answeredMs: [] },
      burstLive: [],
      bareBurst: { ...tally(), answeredMs: [] },
      bareBurstLive: [],
      live: [],
      liveKeptAlive: [],
      ready: [],
      readyKeptAlive: [],
      // The same probe with the service idle: how much of the p99 is this machine rather than the logins.
      idle: [],
      // The floor: bare fastify's /health/live while raw argon2.verify keeps the cores as busy as logins do.
      bareLive: [],
      bareLiveKeptAlive: [],
      floods: new Map(floodTargets.map((target) => [target, tally()]))
    }
    const bothWays = (route, onNew, onKeptAlive, offsetMs = 0) => [{ route, options: { offsetMs }, latenciesMs: onNew }, { route, options: { keptAlive: true, offsetMs }, latenciesMs: onKeptAlive }]
    // Liveness and readiness in the same slices, taking turns, so that both see the same moments.
    const probes = [...bothWays('/health/live', r.live, r.liveKeptAlive), ...bothWays('/health/ready', r.ready, r.readyKeptAlive, PROBE_INTERVAL_MS / 2)]
    progress('bench', `round ${round}/${ROUNDS}: logins with probes, raw argon2.verify, both with cheap hashing, bursts, idle probe, logins started plain and by npm; ${SLICES} x ${SLICE_SECONDS} s each`)
    await takeTurns(SLICES, [
      () => loginSlice(service, r.logins, { probes }),
      () => verifySlice(verifyLoop, r.raw),
      () => loginSlice(loginFloor, r.floorLogins),
      () => loginSlice(service, r.logins, { probes }),
      () => Promise.all([verifySlice(verifyLoop, tally()), ...bothWays('/health/live', r.bareLive, r.bareLiveKeptAlive).map(({ route, options, latenciesMs }) => probeHealth(bare, route, latenciesMs, options))]),
      () => loginSlice(cheap, r.cheapLogins, { connections: CHEAP_LOGIN_CONNECTIONS }),
      () => verifySlice(cheapVerifyLoop, r.cheapRaw),
      () => loginSlice(cheapLoginFloor, r.cheapFloorLogins, { connections: CHEAP_LOGIN_CONNECTIONS }),
      () => burstSlice(embedded, r.burst, r.burstLive),
      () => burstSlice(bare, r.bareBurst, r.bareBurstLive),
      () => probeHealth(service, '/health/live', r.idle),
      () => loginSlice(plain, r.plainLogins),
      () => loginSlice(npmStarted, r.npmLogins)
    ])
    progress('bench', `round ${round}/${ROUNDS}: 429 floods and the bare route, ${SLICES} x ${SLICE_SECONDS} s each`)
    await takeTurns(SLICES, floodTargets.map((target) => () => floodSlice(target, config, r.floods.get(target))))
    rounds.push({ ...r, peakRss: rssMiB(service.pid, 'VmHWM'), floorPeakRss: rssMiB(loginFloor.pid, 'VmHWM'), plainPeakRss: rssMiB(plain.pid, 'VmHWM'), npmPeakRss: rssMiB(npmStarted.pid, 'VmHWM'), embeddedPeakRss: rssMiB(embedded.pid, 'VmHWM') })
  }

  const column = (value) => rounds.map(value)
  const rows = []
  const verdicts = []
  const judged = (label, values, compare, threshold, format, targetText) => {
    const passed = compare(median(values), threshold)
    verdicts.push(`${verdict(passed)}  ${label} ${targetText}: ${format(median(values))}`)
    return { target: targetText, result: verdict(passed) }
  }
  const atLeast = (a, b) => a >= b
  const atMost = (a, b) => a <= b
  const below = (a, b) => a < b
  const formatCpuMs = (value) => value.toFixed(2)
  // Per attempt answered (those the load generator left in flight at a slice's end and the drain included).
  const mainThreadMsPer = (into) => into.mainThreadCpuSeconds * 1000 / into.attempts

  const loginPerRaw = column((r) => steadyRate(r.logins) / steadyRate(r.raw))
  rows.push(
    { label: `1. logins/s, ${mode} (${LOGIN_CONNECTIONS} conns, new IP each)`, values: column((r) => steadyRate(r.logins)), format: formatRate },
    { label: `   raw argon2.verify/s (${threads} in flight)`, values: column((r) => steadyRate(r.raw)), format: formatRate },
    { label: '   login / raw', values: loginPerRaw, format: formatRatio, ...judged('login / raw argon2.verify throughput', loginPerRaw, atLeast, TARGETS.loginPerRaw, formatRatio, `>= ${TARGETS.loginPerRaw}`) },
    // What the target leaves room for: argon2.verify behind a bare route, driven as the logins are.
    { label: '   login floor/s: bare fastify + argon2.verify, same load', values: column((r) => steadyRate(r.floorLogins)), format: formatRate, target: '(info)' },
    { label: '   login floor / raw', values: column((r) => steadyRate(r.floorLogins) / steadyRate(r.raw)), format: formatRatio, target: '(info)' },
    { label: '   login / login floor', values: column((r) => steadyRate(r.logins) / steadyRate(r.floorLogins)), format: formatRatio, target: '(info)' }
  )
  const loginPerRawCpu = column((r) => perCpuSecond(r.logins) / perCpuSecond(r.raw))
  if (loginPerRawCpu.every(Number.isFinite)) rows.push({ label: '   login / raw, per CPU second used', values: loginPerRawCpu, format: formatRatio, target: '(info)' })
  const eventLoopMsPerLogin = column((r) => mainThreadMsPer(r.logins))
  if (eventLoopMsPerLogin.every(Number.isFinite)) rows.push({ label: '   main thread CPU per login answered, ms (probes too)', values: eventLoopMsPerLogin, format: formatCpuMs, target: '(info)' })
  const cheapParameters = `m=${cheapConfig.ARGON2_MEMORY_KIB} KiB t=${cheapConfig.ARGON2_TIME_COST}`
  rows.push(
    { label: `   logins/s, cheap hashing (${cheapParameters}), embedded, ${CHEAP_LOGIN_CONNECTIONS} conns`, values: column((r) => steadyRate(r.cheapLogins)), format: formatRate },
    { label: '   raw argon2.verify/s, cheap hashing', values: column((r) => steadyRate(r.cheapRaw)), format: formatRate, target: '(info)' }
  )
  const cheapMainThreadMs = column((r) => mainThreadMsPer(r.cheapLogins))
  if (cheapMainThreadMs.every(Number.isFinite)) {
    rows.push(
      { label: '   main thread CPU per login answered, ms, cheap hashing', values: cheapMainThreadMs, format: formatCpuMs, ...judged('main thread CPU per login, cheap hashing (ms)', cheapMainThreadMs, atMost, TARGETS.mainThreadMsPerLogin, formatCpuMs, `<= ${TARGETS.mainThreadMsPerLogin}`) },
      { label: '   main thread CPU per raw argon2.verify, ms, cheap hashing', values: column((r) => mainThreadMsPer(r.cheapRaw)), format: formatCpuMs, target: '(info)' },
      { label: '   floor: main thread CPU per login, login floor, cheap hashing', values: column((r) => mainThreadMsPer(r.cheapFloorLogins)), format: formatCpuMs, target: '(info)' }
    )
  }

  const probeRow = (label, values, verdictLabel) => ({ label, values, format: formatMs, ...judged(verdictLabel, values, below, TARGETS.healthP99Ms, formatMs, `< ${TARGETS.healthP99Ms} ms`) })
  const p99 = (key) => column((r) => percentile(r[key], 0.99))
  rows.push(
    probeRow(`2. GET /health/live p99, every ${PROBE_INTERVAL_MS} ms, new connection, during logins`, p99('live'), 'GET /health/live p99 while logins saturate, new connection per probe'),
    probeRow('   GET /health/live p99, kept-alive connection, during logins', p99('liveKeptAlive'), 'GET /health/live p99 while logins saturate, kept-alive connection'),
    probeRow('   GET /health/ready p99, new connection, during logins', p99('ready'), 'GET /health/ready p99 while logins saturate, new connection per probe'),
    probeRow('   GET /health/ready p99, kept-alive connection, during logins', p99('readyKeptAlive'), 'GET /health/ready p99 while logins saturate, kept-alive connection'),
    { label: '   GET /health/live p99, new connection, service idle', values: p99('idle'), format: formatMs, target: '(info)' },
    { label: '   floor: bare fastify /health/live p99 beside raw argon2.verify, new connection', values: p99('bareLive'), format: formatMs, target: '(info)' },
    { label: '   floor: the same, kept-alive connection', values: p99('bareLiveKeptAlive'), format: formatMs, target: '(info)' }
  )

  const barePerSecond = column((r) => perSecond(r.floods.get(bare)))
  rows.push({ label: `3. bare fastify 429/s, same response (${FLOOD_CONNECTIONS} conns)`, values: barePerSecond, format: formatRate })
  const floodRows = [
    { target: embedded, label: 'embedded' },
    ...(redisMode ? [{ target: redisMode, label: 'Redis mode' }] : [])
  ]
  for (const { target, label } of floodRows) {
    const rejections = column((r) => perSecond(r.floods.get(target)))
    const perBare = rejections.map((value, i) => value / barePerSecond[i])
    rows.push(
      { label: `   429/s, ${label}`, values: rejections, format: formatRate },
      { label: `   429 / bare, ${label}`, values: perBare, format: formatRatio, ...judged(`429 rejections/s / bare fastify req/s (${label})`, perBare, atLeast, TARGETS.rejectionsPerBare, formatRatio, `>= ${TARGETS.rejectionsPerBare}`) }
    )
    const perBareCpu = column((r) => perCpuSecond(r.floods.get(target)) / perCpuSecond(r.floods.get(bare)))
    if (perBareCpu.every(Number.isFinite)) rows.push({ label: `   429 / bare, ${label}, per CPU second used`, values: perBareCpu, format: formatRatio, target: '(info)' })
  }
  if (!redisMode) verdicts.push('SKIP  Redis mode: redis-server not found')

  const shedP99 = column((r) => percentile(r.burst.latenciesMs, 0.99) ?? NaN)
  const burstLiveP99 = p99('burstLive')
  rows.push(
    { label: `4. 503s per burst of ${BURST_LOGINS} concurrent logins, embedded, default pool`, values: column((r) => r.burst.count / SLICES), format: formatRate, target: '(info)' },
    { label: '   503 latency p99', values: shedP99, format: formatMs, ...judged(`503 p99 in a burst of ${BURST_LOGINS} logins`, shedP99, below, TARGETS.shedP99Ms, formatMs, `< ${TARGETS.shedP99Ms} ms`) },
    probeRow(`   GET /health/live p99 during the bursts, every ${BURST_PROBE_INTERVAL_MS} ms, new connection`, burstLiveP99, `GET /health/live p99 during a burst of ${BURST_LOGINS} logins`),
    { label: '   slowest login answered (not shed)', values: column((r) => Math.max(...r.burst.answeredMs)), format: formatMs, target: '(info)' },
    { label: '   floor: the same bursts against bare fastify, its 429s\' p99', values: column((r) => percentile(r.bareBurst.latenciesMs, 0.99) ?? NaN), format: formatMs, target: '(info)' },
    { label: '   floor: GET /health/live p99 during them', values: p99('bareBurstLive'), format: formatMs, target: '(info)' }
  )

  const formatMiB = (value) => value.toFixed(0)
  const rssRow = (label, values, verdictLabel) => ({ label, values, format: formatMiB, ...judged(verdictLabel, values, below, TARGETS.peakRssMiB, formatMiB, `< ${TARGETS.peakRssMiB}`) })
  const imageRss = column((r) => r.peakRss)
  if (imageRss.every(Number.isFinite)) {
    rows.push(
      rssRow('5. peak RSS (VmHWM) under login saturation, MiB, the image\'s environment', imageRss, 'peak RSS under login saturation, the image\'s environment (MiB)'),
      rssRow('   the same, node dist/server.js', column((r) => r.plainPeakRss), 'peak RSS under login saturation, node dist/server.js (MiB)'),
      rssRow('   the same, npm start', column((r) => r.npmPeakRss), 'peak RSS under login saturation, npm start (MiB)'),
      { label: '   image\'s environment, sampled every 20 ms during logins', values: column((r) => r.logins.peakRss), format: formatMiB, target: '(info)' },
      { label: '   embedded: peak so far, bursts and 429s', values: column((r) => r.embeddedPeakRss), format: formatMiB, target: '(info)' },
      { label: '   floor: the login floor, the image\'s environment, the same logins', values: column((r) => r.floorPeakRss), format: formatMiB, target: '(info)' }
    )
  }

  printReport([
    `Login service benchmark: ${ROUNDS} rounds, each measurement ${SLICES} x ${SLICE_SECONDS} s per round taking turns; medians of rounds`,
    `node ${process.version}, ${availableParallelism()} CPUs, ARGON2_THREADS=${threads}, LOGIN_QUEUE_MAX=${queueMax}, image environment MALLOC_ARENA_MAX=${IMAGE_ENV.MALLOC_ARENA_MAX}, NODE_OPTIONS=${IMAGE_ENV.NODE_OPTIONS}, ` +
      `argon2id m=${config.ARGON2_MEMORY_KIB} KiB t=${config.ARGON2_TIME_COST} p=${config.ARGON2_PARALLELISM}, ` +
      `rate limit ${config.RATE_LIMIT_MAX} per ${config.RATE_LIMIT_WINDOW_MS / 1000} s per client IP`
  ].join('\n'), ROUNDS, rows, verdicts)
}

await runBenchmark('bench', main)
