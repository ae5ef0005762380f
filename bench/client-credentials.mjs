// Client-credentials grant benchmark, run on the built dist/ (`npm run bench` builds first).
//
// Starts, as child processes on free loopback ports with temporary data (LOG_LEVEL=info as in
// production, one client registered through the clients CLI unless said otherwise):
//   - the service in embedded mode, and in Redis mode on a throwaway redis-server, Sentinel (one
//     primary, one replica, three sentinels) and Cluster (three primaries, three replicas), each
//     with every limit on at its default window (60 s) and TOKEN_GRANT_RATE_MAX raised so that no
//     run reaches it (a 429 is no grant);
//   - the same in embedded and standalone Redis mode with a 1 s window (so few grants in a window),
//     and with 10,000 clients registered (a clients file applied) beside the one measured;
//   - the peer, panva's oidc-provider (bench/peer-oidc-provider.mjs), keeping its client in memory
//     and in Redis (on the standalone redis-server);
//   - the grant floor of bench/grant-floor-server.mjs (one Redis read, one signature), in Redis and
//     embedded, each also with the service's grant limits (GRANT_FLOOR_LIMITS), and the bare
//     Fastify route of bench/bare-server.mjs.
// Then measures at saturation (32 connections, POST /oauth2/token, client_secret_basic, the same
// request for the service and the peer, every response a 200 with a fresh signed token) each
// one's grants/s, its CPU and that of the Redis processes it uses (from /proc), and each slice's
// p99; and token exchanges/s (RFC 8693) in Redis mode. Every measurement runs in 1 s slices that
// take turns, so all see the same moments of a shared machine; the table shows each round and
// the median of rounds, with the targets of the ratios.
// Exits 0 whether or not targets are met, 1 when something broke. BENCH_ROUNDS (5) and
// BENCH_SECONDS (3, per measurement per round) override the length; exits 0 without measuring
// when redis-server is not installed.
import { createHash, randomBytes } from 'node:crypto'
import { mkdir, writeFile } from 'node:fs/promises'
import { registerHooks } from 'node:module'
import { availableParallelism } from 'node:os'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import autocannon from 'autocannon'
import { Redis } from 'ioredis'
import {
  BARE_SERVER_SCRIPT, HOST, KEYS_CLI, ROOT, SERVER_SCRIPT, countOnly, cpuSeconds, formatRate, formatRatio, median, perCpuSecond,
  perSecond, positiveInteger, printReport, progress, request, run, runBenchmark, serviceEnv, startRedis, startServer, takeTurns, tally,
  track, verdict, workPath
} from './harness.mjs'

const CLIENTS_CLI = path.join(ROOT, 'dist', 'cli', 'clients.js')
const GRANT_FLOOR_SCRIPT = fileURLToPath(new URL('grant-floor-server.mjs', import.meta.url))
const PEER_SCRIPT = fileURLToPath(new URL('peer-oidc-provider.mjs', import.meta.url))

const ROUNDS = positiveInteger('BENCH_ROUNDS', 5)
const SLICES = positiveInteger('BENCH_SECONDS', 3)
const SLICE_SECONDS = 1
const CONNECTIONS = 32
// Far more grants than a run makes in any window: the limit counts every grant but never answers 429.
const GRANT_RATE_MAX = '10000000'
const REGISTERED_CLIENTS = 10_000
const CLIENT_ID = 'bench-client'
const EXCHANGER_ID = 'bench-exchanger'
const SCOPE = 'orders:read orders:write'
const AUDIENCE = 'https://orders.internal'
const TAG = 'bench:grants'

const TARGETS = {
  perPeer: 2.0,
  perFloor: 0.8,
  windowIndependence: 0.95,
  manyClients: 0.95
}

// ---------- what is measured ----------

/** One slice of `request` at saturation; the CPU of the target and of the Redis processes it uses. */
async function slice ({ target, request, status, redisPids = [] }, into) {
  const pids = [target.pid, ...redisPids]
  const cpuBefore = pids.map((pid) => cpuSeconds(pid))
  const result = await autocannon({ url: target.url, connections: CONNECTIONS, duration: SLICE_SECONDS, requests: [request] })
  into.count += countOnly(result, status, `${request.path} on ${target.name}`)
  into.seconds += result.duration
  into.cpuSeconds += pids.reduce((sum, pid, i) => sum + cpuSeconds(pid) - cpuBefore[i], 0)
  into.latenciesMs.push(result.latency.p99)
}

function basicAuthorization (clientId, secret) {
  return `Basic ${Buffer.from(`${clientId}:${secret}`).toString('base64')}`
}

function grantRequest (secret) {
  return {
    method: 'POST',
    path: '/oauth2/token',
    headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basicAuthorization(CLIENT_ID, secret) },
    body: 'grant_type=client_credentials&scope=orders%3Aread'
  }
}

/** The service starts without waiting for Redis: a first grant answered 200 shows it is connected. */
async function firstGrant (target, { headers, body }) {
  const deadline = Date.now() + 20_000
  while (true) {
    const response = await request(`${target.url}/oauth2/token`, { method: 'POST', headers, body })
    const answer = response.json()
    if (response.status === 200 && typeof answer.access_token === 'string') return answer.access_token
    if (Date.now() > deadline) throw new Error(`a grant on ${target.name} answered ${response.status} ${JSON.stringify(answer)}`)
    await sleep(200)
  }
}

// ---------- what is started ----------

/**
 * The Redis topologies of the tests (test/redis-topologies.ts). Node strips their types, but
 * they import each other as `.js`, as TypeScript's NodeNext resolution writes it: resolve those
 * to the `.ts` beside them.
 */
async function topologyLauncher () {
  const testDir = new URL('../test/', import.meta.url).href
  registerHooks({
    resolve (specifier, context, nextResolve) {
      const fromTests = context.parentURL?.startsWith(testDir) && specifier.startsWith('./') && specifier.endsWith('.js')
      return nextResolve(fromTests ? specifier.replace(/\.js$/, '.ts') : specifier, context)
    }
  })
  return (await import('../test/redis-topologies.ts')).launchTopology
}

/** A topology's redis-server processes, stopped with every other child when the run ends; their pids. */
async function startTopology (launchTopology, name) {
  const dir = workPath(`topology-${name}`)
  await mkdir(dir)
  const topology = await launchTopology(name, dir)
  // Each process is its spawnRedis record, which holds the child process.
  for (const { child } of topology.processes) track(child)
  return { env: topology.env, pids: topology.processes.map(({ child }) => child.pid) }
}

/** A clients file declaring `count` clients besides the one measured, each with a secret of its own. */
async function clientsFile (count) {
  const lines = ['clients:']
  for (let i = 1; i <= count; i++) {
    const digest = createHash('sha256').update(randomBytes(32).toString('base64url')).digest('hex')
    lines.push(`  - id: registered-${i}`, '    scopes: [orders:read]', `    audiences: ['${AUDIENCE}']`, `    secretDigests: ['sha256:${digest}']`)
  }
  const file = workPath(`clients-${count}.yaml`)
  await writeFile(file, `${lines.join('\n')}\n`)
  return file
}

/**
 * The service with `settings` over the shared ones, and its client registered; with `otherClients`,
 * that many more registered before it starts. Resolves to the server and the client's secret.
 */
async function startService (name, settings, { otherClients = 0 } = {}) {
  const env = serviceEnv({ LOG_LEVEL: 'info', DATA_DIR: workPath(name), TOKEN_GRANT_RATE_MAX: GRANT_RATE_MAX, ...settings })
  if (otherClients > 0) await run([CLIENTS_CLI, 'apply', await clientsFile(otherClients)], { env })
  const secret = (await run([CLIENTS_CLI, 'add', CLIENT_ID, '--scope', SCOPE, '--audience', AUDIENCE], { env })).trim()
  return { env, secret, server: await startServer(name, SERVER_SCRIPT, { ...env, JWT_ISSUER: `http://${HOST}` }) }
}

async function main () {
  const redisUrl = await startRedis()
  if (redisUrl === undefined) {
    progress(TAG, 'redis-server not found: skipped')
    return
  }
  // startRedis gives its URL: its pid from INFO, to read its CPU.
  const admin = new Redis(redisUrl)
  const redisPid = Number(/process_id:(\d+)/.exec(await admin.info('server'))[1])
  admin.disconnect()

  const keyFile = workPath('jwt-signing-key.pem')
  await run([KEYS_CLI, 'generate', keyFile], { env: serviceEnv({}) })
  const redisMode = (prefix, topologyEnv = { REDIS_URL: redisUrl }) => ({ ...topologyEnv, REDIS_KEY_PREFIX: `${prefix}:`, JWT_PRIVATE_KEY_FILE: keyFile })
  const oneSecondWindow = { TOKEN_GRANT_RATE_WINDOW_MS: '1000' }

  progress(TAG, 'starting Sentinel and Cluster')
  const launchTopology = await topologyLauncher()
  const sentinel = await startTopology(launchTopology, 'sentinel')
  const cluster = await startTopology(launchTopology, 'cluster')

  progress(TAG, `registering clients (${REGISTERED_CLIENTS} twice) and starting the services`)
  const embedded = await startService('service-embedded', {})
  const embeddedShortWindow = await startService('service-embedded-1s-window', oneSecondWindow)
  const embeddedManyClients = await startService('service-embedded-many-clients', {}, { otherClients: REGISTERED_CLIENTS - 1 })
  const standalone = await startService('service-redis', redisMode('standalone'))
  const standaloneShortWindow = await startService('service-redis-1s-window', { ...redisMode('short-window'), ...oneSecondWindow })
  const standaloneManyClients = await startService('service-redis-many-clients', redisMode('many-clients'), { otherClients: REGISTERED_CLIENTS - 1 })
  const onSentinel = await startService('service-sentinel', redisMode('sentinel', sentinel.env))
  const onCluster = await startService('service-cluster', redisMode('cluster', cluster.env))
  // The peer gets the service's client and secret, so both get the very same request.
  const peerEnv = { ...process.env, CLIENT_ID, CLIENT_SECRET: standalone.secret }
  const peer = await startServer('peer-memory', PEER_SCRIPT, peerEnv)
  const peerRedis = await startServer('peer-redis', PEER_SCRIPT, { ...peerEnv, REDIS_URL: redisUrl })
  const bare = await startServer('bare-fastify', BARE_SERVER_SCRIPT, process.env)
  const floor = await startServer('grant-floor', GRANT_FLOOR_SCRIPT, { ...process.env, REDIS_URL: redisUrl })
  const { REDIS_URL: _shellRedis, ...withoutRedis } = process.env
  const embeddedFloor = await startServer('grant-floor-embedded', GRANT_FLOOR_SCRIPT, withoutRedis)
  // The floors again, each grant counted by the service's own limits at the services' settings.
  const withLimits = { GRANT_FLOOR_LIMITS: '1', TOKEN_GRANT_RATE_MAX: GRANT_RATE_MAX }
  const floorLimits = await startServer('grant-floor-limits', GRANT_FLOOR_SCRIPT, { ...process.env, ...withLimits, ...redisMode('grant-floor-limits') })
  const embeddedFloorLimits = await startServer('grant-floor-embedded-limits', GRANT_FLOOR_SCRIPT, { ...withoutRedis, ...withLimits, DATA_DIR: workPath('grant-floor-embedded-limits') })

  // It may exchange the client's tokens (it serves their resource) for billing's.
  const exchangerSecret = (await run([CLIENTS_CLI, 'add', EXCHANGER_ID, '--scope', 'orders:read', '--audience', 'https://billing.internal',
    '--serves', AUDIENCE, '--exchange-audience', 'https://billing.internal'], { env: standalone.env })).trim()

  const grants = (service, redisPids = []) => ({ target: service.server, request: grantRequest(service.secret), status: 200, redisPids })
  const measurements = {
    embedded: grants(embedded),
    embeddedShortWindow: grants(embeddedShortWindow),
    embeddedManyClients: grants(embeddedManyClients),
    standalone: grants(standalone, [redisPid]),
    standaloneShortWindow: grants(standaloneShortWindow, [redisPid]),
    standaloneManyClients: grants(standaloneManyClients, [redisPid]),
    sentinel: grants(onSentinel, sentinel.pids),
    cluster: grants(onCluster, cluster.pids),
    peer: { target: peer, request: grantRequest(standalone.secret), status: 200 },
    peerRedis: { target: peerRedis, request: grantRequest(standalone.secret), status: 200, redisPids: [redisPid] },
    floor: { target: floor, request: grantRequest(standalone.secret), status: 200, redisPids: [redisPid] },
    embeddedFloor: { target: embeddedFloor, request: grantRequest(standalone.secret), status: 200 },
    floorLimits: { target: floorLimits, request: grantRequest(standalone.secret), status: 200, redisPids: [redisPid] },
    embeddedFloorLimits: { target: embeddedFloorLimits, request: grantRequest(standalone.secret), status: 200 },
    bare: { target: bare, request: { method: 'POST', path: '/api/auth/login', headers: { 'content-type': 'application/json' }, body: '{}' }, status: 429 }
  }
  for (const measurement of Object.values(measurements)) {
    if (measurement.status === 200) await firstGrant(measurement.target, measurement.request)
  }
  const subjectToken = await firstGrant(standalone.server, measurements.standalone.request)
  measurements.exchanges = {
    target: standalone.server,
    request: {
      method: 'POST',
      path: '/oauth2/token',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basicAuthorization(EXCHANGER_ID, exchangerSecret) },
      body: new URLSearchParams({
        grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
        subject_token: subjectToken,
        subject_token_type: 'urn:ietf:params:oauth:token-type:access_token',
        resource: 'https://billing.internal'
      }).toString()
    },
    status: 200,
    redisPids: [redisPid]
  }
  await firstGrant(standalone.server, measurements.exchanges.request)
  const measured = Object.values(measurements)

  progress(TAG, 'warming up')
  for (const measurement of measured) await slice(measurement, tally())

  const rounds = []
  for (let round = 1; round <= ROUNDS; round++) {
    const tallies = new Map(measured.map((measurement) => [measurement, tally()]))
    progress(TAG, `round ${round}/${ROUNDS}: ${measured.length} measurements, ${SLICES} x ${SLICE_SECONDS} s each`)
    await takeTurns(SLICES, measured.map((measurement) => () => slice(measurement, tallies.get(measurement))))
    rounds.push(tallies)
  }

  const column = (measurement, value) => rounds.map((tallies) => value(tallies.get(measurement)))
  const rate = (measurement) => column(measurement, perSecond)
  const ratio = (a, b) => rate(a).map((value, i) => value / rate(b)[i])
  const formatMs = (value) => `${value.toFixed(0)} ms`
  const verdicts = []
  const judged = (label, values, threshold) => {
    const passed = median(values) >= threshold
    verdicts.push(`${verdict(passed)}  ${label} >= ${threshold}: ${formatRatio(median(values))}`)
    return { values, format: formatRatio, target: `>= ${threshold}`, result: verdict(passed) }
  }
  const rows = [
    { label: `grants/s, embedded (${CONNECTIONS} conns, client_secret_basic)`, values: rate(measurements.embedded), format: formatRate },
    { label: 'grants/s, Redis mode (standalone)', values: rate(measurements.standalone), format: formatRate },
    { label: 'peer grants/s, oidc-provider, client in memory', values: rate(measurements.peer), format: formatRate },
    { label: 'peer grants/s, oidc-provider, client in Redis', values: rate(measurements.peerRedis), format: formatRate },
    { label: '1. embedded / peer in memory', ...judged('grants embedded / oidc-provider in memory', ratio(measurements.embedded, measurements.peer), TARGETS.perPeer) },
    { label: '   Redis mode / peer in Redis', ...judged('grants Redis mode / oidc-provider in Redis', ratio(measurements.standalone, measurements.peerRedis), TARGETS.perPeer) },
    { label: '   Redis mode / peer in memory', ...judged('grants Redis mode / oidc-provider in memory', ratio(measurements.standalone, measurements.peer), TARGETS.perPeer) },
    // What row 1 can reach: a token endpoint that did nothing but read its client and sign.
    { label: '   floor, embedded / peer in memory', values: ratio(measurements.embeddedFloor, measurements.peer), format: formatRatio, target: '(info)' },
    { label: '   floor, Redis / peer in Redis', values: ratio(measurements.floor, measurements.peerRedis), format: formatRatio, target: '(info)' },
    { label: 'grant floor/s: one Redis read, one signature', values: rate(measurements.floor), format: formatRate },
    { label: '2. Redis mode / floor, every limit on', ...judged('grants Redis mode / grant floor', ratio(measurements.standalone, measurements.floor), TARGETS.perFloor) },
    // What row 2 can reach: the floor that also counts each grant as the service does, and nothing more.
    { label: '   floor with the limits / floor: the limits alone', values: ratio(measurements.floorLimits, measurements.floor), format: formatRatio, target: '(info)' },
    { label: '   Redis mode / floor with the limits', values: ratio(measurements.standalone, measurements.floorLimits), format: formatRatio, target: '(info)' },
    { label: 'grant floor/s, embedded: one signature', values: rate(measurements.embeddedFloor), format: formatRate, target: '(info)' },
    { label: '   embedded / floor, embedded', values: ratio(measurements.embedded, measurements.embeddedFloor), format: formatRatio, target: '(info)' },
    { label: '   floor with the limits / floor, embedded', values: ratio(measurements.embeddedFloorLimits, measurements.embeddedFloor), format: formatRatio, target: '(info)' },
    { label: '3. grants/s, embedded, 1 s grant window', values: rate(measurements.embeddedShortWindow), format: formatRate },
    { label: '   embedded, 60 s / 1 s window', ...judged('grants embedded, 60 s window / 1 s window', ratio(measurements.embedded, measurements.embeddedShortWindow), TARGETS.windowIndependence) },
    { label: '   grants/s, Redis mode, 1 s grant window', values: rate(measurements.standaloneShortWindow), format: formatRate },
    { label: '   Redis mode, 60 s / 1 s window', ...judged('grants Redis mode, 60 s window / 1 s window', ratio(measurements.standalone, measurements.standaloneShortWindow), TARGETS.windowIndependence) }
  ]
  const topologies = [['embedded', measurements.embedded], ['standalone', measurements.standalone], ['Sentinel', measurements.sentinel], ['Cluster', measurements.cluster]]
  rows.push(...topologies.flatMap(([name, measurement], i) => [
    { label: `${i === 0 ? '4.' : '  '} grants/s, ${name}`, values: rate(measurement), format: formatRate },
    { label: `     per vCPU (service${i === 0 ? '' : ' + Redis'} CPU)`, values: column(measurement, perCpuSecond), format: formatRate, target: '(info)' },
    { label: '     p99 (worst slice)', values: column(measurement, ({ latenciesMs }) => Math.max(...latenciesMs)), format: formatMs, target: '(info)' }
  ]))
  rows.push(
    { label: `5. grants/s, embedded, ${REGISTERED_CLIENTS} clients registered`, values: rate(measurements.embeddedManyClients), format: formatRate },
    { label: `   embedded, ${REGISTERED_CLIENTS} clients / one`, ...judged(`grants embedded, ${REGISTERED_CLIENTS} clients / one`, ratio(measurements.embeddedManyClients, measurements.embedded), TARGETS.manyClients) },
    { label: `   grants/s, Redis mode, ${REGISTERED_CLIENTS} clients registered`, values: rate(measurements.standaloneManyClients), format: formatRate },
    { label: `   Redis mode, ${REGISTERED_CLIENTS} clients / one`, ...judged(`grants Redis mode, ${REGISTERED_CLIENTS} clients / one`, ratio(measurements.standaloneManyClients, measurements.standalone), TARGETS.manyClients) },
    { label: `bare fastify req/s (${CONNECTIONS} conns)`, values: rate(measurements.bare), format: formatRate, target: '(info)' },
    { label: '   Redis-mode grants / bare', values: ratio(measurements.standalone, measurements.bare), format: formatRatio, target: '(info)' },
    { label: '   floor / bare', values: ratio(measurements.floor, measurements.bare), format: formatRatio, target: '(info)' },
    { label: 'exchanges/s, RFC 8693, a client token as subject', values: rate(measurements.exchanges), format: formatRate, target: '(info)' },
    { label: '   exchanges / grants, Redis mode', values: ratio(measurements.exchanges, measurements.standalone), format: formatRatio, target: '(info)' }
  )
  printReport([
    `Client-credentials grant benchmark: ${ROUNDS} rounds, each measurement ${SLICES} x ${SLICE_SECONDS} s per round taking turns; medians of rounds`,
    `node ${process.version}, ${availableParallelism()} CPUs, JWT_ALGORITHM=EdDSA, TOKEN_GRANT_RATE_MAX=${GRANT_RATE_MAX} (never reached), every other limit at its default; ` +
      'the peer: oidc-provider, client_secret_basic, EdDSA JWT access tokens, TTL 900 s'
  ].join('\n'), ROUNDS, rows.filter(({ values }) => values.every(Number.isFinite)), verdicts)
}

await runBenchmark(TAG, main)
