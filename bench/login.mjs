// Login service benchmark, run on the built dist/ (`npm run bench` builds first).
//
// Starts everything it measures as child processes on free loopback ports, with temporary data and
// the default settings (LOG_LEVEL=info as in production): two Redis-mode replicas against a
// throwaway redis-server (embedded mode instead when redis-server is not installed), the service in
// embedded mode, a bare Fastify server, and a bare argon2.verify loop. Then:
//   1. logins/s at saturation (right password, limiter on, every login from its own client IP,
//      16 connections) against raw argon2.verify/s with the same parameters, threads and priority,
//      each side at its steady rate, between the first and the last completion of each slice;
//   2. p99 latency of GET /health/live and /health/ready at 50 requests/s, each on a new
//      connection as a kubelet probes, while logins saturate;
//   3. 429 rejections/s (one client IP over its limit) against a bare Fastify route sending the
//      same 429 response (bench/bare-server.mjs says why);
//   4. overload: a burst of 64 login connections, more than the hashing threads and LOGIN_QUEUE_MAX
//      hold; the p99 latency of the 503s it is answered with;
//   5. the peak RSS of the replica that logs in, while logins saturate (sampled) and overall (VmHWM).
// Logins and probes go to a replica that does nothing else, since a burst or a flood leaves the
// heap grown for a while; 429s go to the other replica and to embedded mode, the burst to embedded.
// The machine is shared, so each round cuts every measurement into 1 s slices that take turns:
// what is compared sees the same moments. The table shows each round and the median of rounds.
// Exits 0 whether or not targets are met, 1 when something broke (an unexpected status, a child
// that failed). BENCH_ROUNDS (3) and BENCH_SECONDS (4, per measurement per round) override the length.
import { spawn } from 'node:child_process'
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

const ROUNDS = positiveInteger('BENCH_ROUNDS', 3)
const SLICES = positiveInteger('BENCH_SECONDS', 4)
const SLICE_SECONDS = 1
// Well over the hashes that run at once, as a busy service sees them.
const LOGIN_CONNECTIONS = 16
// Far more than the hashing threads and the queue hold: most of these are shed.
const OVERLOAD_CONNECTIONS = 64
const FLOOD_CONNECTIONS = 10
const PROBE_RATE = 50

const TARGETS = {
  loginPerRaw: 0.95,
  rejectionsPerBare: 0.8,
  healthP99Ms: 10,
  peakRssMiB: 150
}

// The environment the Dockerfile gives the service (it says why), unless this shell sets it.
const IMAGE_ENV = {
  MALLOC_ARENA_MAX: process.env.MALLOC_ARENA_MAX ?? '1',
  NODE_OPTIONS: process.env.NODE_OPTIONS ?? '--max-semi-space-size=4'
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
 * other costs), every other service setting in the shell is dropped.
 */
function serviceEnv (settings) {
  // 16 concurrent logins of one user would otherwise meet the per-username throttle, which counts
  // each attempt as a failure until it succeeds (threshold 10): the throttle is not measured here.
  return withoutServiceSettings({ ...IMAGE_ENV, TRUST_PROXY: HOST, LOG_LEVEL: 'info', ACCOUNT_THROTTLE_THRESHOLD: '100', ...settings }, (name) => name.startsWith('ARGON2_'))
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
 * GET a health route at a fixed rate for one slice, every response time kept in `latenciesMs`, as
 * the kubelet probes: each probe on a new connection, sent on schedule whether or not the one
 * before has been answered. Not autocannon: the first response on each of its connections includes
 * the load generator's own start-up (19-38 ms on this machine against an idle server, while every
 * later one took under 8 ms), and with a new instance per slice that start-up would be the p99.
 */
async function probeHealth (service, route, latenciesMs) {
  const start = performance.now()
  const probes = []
  for (let sent = 0; sent < PROBE_RATE * SLICE_SECONDS; sent++) {
    await sleep(Math.max(0, start + sent * 1000 / PROBE_RATE - performance.now()))
    const sentAt = performance.now()
    probes.push(request(`${service.url}${route}`).then((response) => {
      if (response.status !== 200) throw new Error(`GET ${route} on ${service.name} answered ${response.status}`)
      latenciesMs.push(performance.now() - sentAt)
    }))
  }
  await Promise.all(probes)
}

/** One slice of logins with the right password, each from a new client IP, with a health probe meanwhile. */
async function loginSlice (service, logins, route, latenciesMs) {
  const cpuBefore = cpuSeconds(service.pid)
  const mainThreadCpuBefore = cpuSeconds(service.pid, { mainThreadOnly: true })
  const attemptsBefore = await loginAttempts(service)
  const loginRun = autocannon({
    url: service.url,
    connections: LOGIN_CONNECTIONS,
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
  loginRun.on('response', (_client, status) => { if (status === 200) completedAt.push(performance.now()) })
  // RSS every 20 ms: each hash holds its argon2 memory for longer than that.
  const sampler = setInterval(() => { logins.peakRss = Math.max(logins.peakRss, rssMiB(service.pid) ?? NaN) }, 20)
  const [loginResult] = await Promise.all([loginRun, probeHealth(service, route, latenciesMs)]).finally(() => clearInterval(sampler))
  logins.count += countOnly(loginResult, 200, `logins on ${service.name}`, true)
  logins.seconds += loginResult.duration
  addSteadyState(logins, completedAt)
  await drain(service)
  logins.cpuSeconds += cpuSeconds(service.pid) - cpuBefore
  logins.mainThreadCpuSeconds += cpuSeconds(service.pid, { mainThreadOnly: true }) - mainThreadCpuBefore
  logins.attempts += await loginAttempts(service) - attemptsBefore
}

/** Login attempts the service has answered so far, all outcomes (auth_login_attempts_total). */
async function loginAttempts (service) {
  const metrics = await (await fetch(service.metricsUrl)).text()
  return metrics.split('\n').filter((line) => line.startsWith('auth_login_attempts_total{')).reduce((sum, line) => sum + Number(line.split(' ').pop()), 0)
}

/**
 * One slice of a login burst well over what the service hashes and queues, each attempt from a new
 * client IP for a new unknown username (so that neither the limit nor the throttle answers): every
 * answer must be 401 or the 503 of a shed login, whose latencies go to `shed.latenciesMs`.
 */
async function overloadSlice (service, shed) {
  const burst = autocannon({
    url: service.url,
    connections: OVERLOAD_CONNECTIONS,
    duration: SLICE_SECONDS,
    requests: [{
      ...LOGIN_REQUEST,
      setupRequest: (request) => {
        const ip = newClientIp()
        request.headers['x-forwarded-for'] = ip
        request.body = JSON.stringify({ username: `unknown-${ip}`, password: PASSWORD })
        return request
      }
    }]
  })
  burst.on('response', (_client, status, _bytes, responseTimeMs) => { if (status === 503) shed.latenciesMs.push(responseTimeMs) })
  const result = await burst
  const counts = Object.fromEntries(Object.entries(result.statusCodeStats).map(([code, { count }]) => [code, count]))
  if (Object.keys(counts).some((code) => code !== '401' && code !== '503') || result.errors > 0 || result.timeouts > 0) {
    throw new Error(`overload on ${service.name}: expected 401 or 503, got statuses ${JSON.stringify(counts)}, ${result.errors} errors, ${result.timeouts} timeouts`)
  }
  shed.count += counts['503'] ?? 0
  shed.seconds += result.duration
  await drain(service)
}

async function verifySlice (verifyLoop, raw) {
  const { verifications, seconds, cpuSeconds: cpuUsed, completedAt } = await verifyLoop.verifyFor(SLICE_SECONDS)
  raw.count += verifications
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

const formatMs = (value) => `${value.toFixed(0)} ms`

// ---------- the run ----------

async function main () {
  const embeddedEnv = serviceEnv({ DATA_DIR: workPath('embedded') })
  const config = loadConfig(embeddedEnv)
  const { threads, queueMax } = hashingCapacity(config)

  progress('bench', 'creating the user and starting the services')
  await addUser(embeddedEnv)
  const embedded = await startServer('service-embedded', SERVER_SCRIPT, embeddedEnv)
  const bare = { ...await startServer('bare-fastify', BARE_SERVER_SCRIPT, process.env), bare: true }
  const verifyLoop = await startVerifyLoop(config, threads)

  // Logins, health probes and their memory on an instance that does nothing else (see the top).
  let redisMode
  let service
  const redisUrl = await startRedis()
  if (redisUrl === undefined) {
    progress('bench', 'redis-server not found: Redis mode skipped, logins measured in embedded mode')
    // The same DATA_DIR: the user and the signing key the first one wrote.
    service = await startServer('service-embedded-logins', SERVER_SCRIPT, embeddedEnv)
  } else {
    const keyFile = workPath('jwt-signing-key.pem')
    const redisEnv = serviceEnv({ DATA_DIR: workPath('redis-mode'), REDIS_URL: redisUrl, JWT_PRIVATE_KEY_FILE: keyFile })
    await run([KEYS_CLI, 'generate', keyFile], { env: redisEnv })
    await addUser(redisEnv)
    service = await startServer('service-redis-logins', SERVER_SCRIPT, redisEnv)
    redisMode = await startServer('service-redis', SERVER_SCRIPT, redisEnv)
  }

  const login = await request(`${service.url}${LOGIN_PATH}`, { method: 'POST', headers: { ...LOGIN_REQUEST.headers, 'x-forwarded-for': newClientIp() }, body: LOGIN_REQUEST.body })
  const loginBody = login.json()
  if (login.status !== 200 || typeof loginBody.data?.accessToken !== 'string') throw new Error(`a login with the right password answered ${login.status} ${JSON.stringify(loginBody)}`)

  const floodTargets = [embedded, bare, ...(redisMode ? [redisMode] : [])]
  progress('bench', 'warming up')
  await loginSlice(service, tally(), '/health/live', [])
  await verifySlice(verifyLoop, tally())
  for (const target of floodTargets) await floodSlice(target, config, tally())

  const rounds = []
  for (let round = 1; round <= ROUNDS; round++) {
    const logins = tally()
    const raw = tally()
    const shed = tally()
    const live = []
    const ready = []
    // The same probe with the service idle: how much of the p99 is this machine rather than the logins.
    const idle = []
    const floods = new Map(floodTargets.map((target) => [target, tally()]))
    progress('bench', `round ${round}/${ROUNDS}: logins with /health/live, logins with /health/ready, raw argon2.verify, overload, idle probe; ${SLICES} x ${SLICE_SECONDS} s each`)
    await takeTurns(SLICES, [
      () => loginSlice(service, logins, '/health/live', live),
      () => verifySlice(verifyLoop, raw),
      () => loginSlice(service, logins, '/health/ready', ready),
      () => overloadSlice(embedded, shed),
      () => probeHealth(service, '/health/live', idle)
    ])
    progress('bench', `round ${round}/${ROUNDS}: 429 floods and the bare route, ${SLICES} x ${SLICE_SECONDS} s each`)
    await takeTurns(SLICES, floodTargets.map((target) => () => floodSlice(target, config, floods.get(target))))
    rounds.push({ logins, raw, shed, live, ready, idle, floods, peakRss: rssMiB(service.pid, 'VmHWM'), embeddedPeakRss: rssMiB(embedded.pid, 'VmHWM') })
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
  const below = (a, b) => a < b

  const loginPerRaw = column((r) => steadyRate(r.logins) / steadyRate(r.raw))
  rows.push(
    { label: `1. logins/s, ${redisMode ? 'Redis mode' : 'embedded'} (${LOGIN_CONNECTIONS} conns, new IP each)`, values: column((r) => steadyRate(r.logins)), format: formatRate },
    { label: `   raw argon2.verify/s (${threads} in flight)`, values: column((r) => steadyRate(r.raw)), format: formatRate },
    { label: '   login / raw', values: loginPerRaw, format: formatRatio, ...judged('login / raw argon2.verify throughput', loginPerRaw, atLeast, TARGETS.loginPerRaw, formatRatio, `>= ${TARGETS.loginPerRaw}`) }
  )
  const loginPerRawCpu = column((r) => perCpuSecond(r.logins) / perCpuSecond(r.raw))
  if (loginPerRawCpu.every(Number.isFinite)) rows.push({ label: '   login / raw, per CPU second used', values: loginPerRawCpu, format: formatRatio, target: '(info)' })
  // Per attempt the service answered (those the load generator left in flight at a slice's end and
  // the drain included): what the hashes lose to the event loop on the cores they share.
  const eventLoopMsPerLogin = column((r) => r.logins.mainThreadCpuSeconds * 1000 / r.logins.attempts)
  if (eventLoopMsPerLogin.every(Number.isFinite)) rows.push({ label: '   event loop CPU per login answered, ms (probes too)', values: eventLoopMsPerLogin, format: (value) => value.toFixed(2), target: '(info)' })

  const liveP99 = column((r) => percentile(r.live, 0.99))
  const readyP99 = column((r) => percentile(r.ready, 0.99))
  rows.push(
    { label: `2. GET /health/live p99 at ${PROBE_RATE} req/s during logins`, values: liveP99, format: formatMs, ...judged('GET /health/live p99 while logins saturate', liveP99, below, TARGETS.healthP99Ms, formatMs, `< ${TARGETS.healthP99Ms} ms`) },
    { label: `   GET /health/ready p99 at ${PROBE_RATE} req/s during logins`, values: readyP99, format: formatMs, ...judged('GET /health/ready p99 while logins saturate', readyP99, below, TARGETS.healthP99Ms, formatMs, `< ${TARGETS.healthP99Ms} ms`) },
    { label: '   GET /health/live p99, service idle', values: column((r) => percentile(r.idle, 0.99)), format: formatMs, target: '(info)' }
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

  rows.push(
    { label: `4. 503/s shed under a burst of ${OVERLOAD_CONNECTIONS} conns, embedded`, values: column((r) => perSecond(r.shed)), format: formatRate },
    { label: '   503 latency p99', values: column((r) => percentile(r.shed.latenciesMs, 0.99) ?? NaN), format: formatMs, target: '(info)' }
  )
  const loginRss = column((r) => r.logins.peakRss)
  if (loginRss.every(Number.isFinite)) {
    const formatMiB = (value) => value.toFixed(0)
    rows.push(
      { label: '5. service peak RSS while logins saturate, MiB', values: loginRss, format: formatMiB, ...judged('service peak RSS while logins saturate (MiB)', loginRss, below, TARGETS.peakRssMiB, formatMiB, `< ${TARGETS.peakRssMiB}`) },
      { label: '   the same, peak so far (VmHWM)', values: column((r) => r.peakRss), format: formatMiB, target: '(info)' },
      { label: '   embedded: peak so far, overload and 429s', values: column((r) => r.embeddedPeakRss), format: formatMiB, target: '(info)' }
    )
  }

  printReport([
    `Login service benchmark: ${ROUNDS} rounds, each measurement ${SLICES} x ${SLICE_SECONDS} s per round taking turns; medians of rounds`,
    `node ${process.version}, ${availableParallelism()} CPUs, ARGON2_THREADS=${threads}, LOGIN_QUEUE_MAX=${queueMax}, MALLOC_ARENA_MAX=${IMAGE_ENV.MALLOC_ARENA_MAX}, NODE_OPTIONS=${IMAGE_ENV.NODE_OPTIONS}, ` +
      `argon2id m=${config.ARGON2_MEMORY_KIB} KiB t=${config.ARGON2_TIME_COST} p=${config.ARGON2_PARALLELISM}, ` +
      `rate limit ${config.RATE_LIMIT_MAX} per ${config.RATE_LIMIT_WINDOW_MS / 1000} s per client IP`
  ].join('\n'), ROUNDS, rows, verdicts)
}

await runBenchmark('bench', main)
