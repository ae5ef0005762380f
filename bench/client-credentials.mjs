// Client-credentials grant benchmark, run on the built dist/ (`npm run bench` builds first).
//
// Starts, as child processes on free loopback ports with temporary data: a throwaway redis-server,
// the service in Redis mode (LOG_LEVEL=info as in production) with one client registered through
// the clients CLI, the bare Fastify server of bench/bare-server.mjs, and the grant floor of
// bench/grant-floor-server.mjs (one Redis read and one signature, nothing else). Then measures
// token grants/s at saturation (POST /oauth2/token, client_secret_basic, many connections, every
// response a 200 with a fresh signed token), token exchanges/s (RFC 8693: a second client exchanging
// a token of the first, so each verifies the subject token against Redis, then signs) beside the
// bare route's req/s and the floor's grants/s,
// in 1 s slices that take turns so all see the same moments of a shared machine, and prints every
// round and the median of rounds. The grant limit stays on, with a window of 1 s and a max no run
// reaches, so its Redis work is measured but never answers 429.
// Exits 0 whether or not the target is met, 1 when something broke. BENCH_ROUNDS (3) and
// BENCH_SECONDS (5, per measurement per round) override the length; exits 0 without measuring
// when redis-server is not installed.
import { availableParallelism } from 'node:os'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import autocannon from 'autocannon'
import {
  BARE_SERVER_SCRIPT, HOST, KEYS_CLI, ROOT, SERVER_SCRIPT, countOnly, cpuSeconds, formatRate, formatRatio, median, perCpuSecond,
  perSecond, positiveInteger, printReport, progress, request, run, runBenchmark, serviceEnv, startRedis, startServer, takeTurns, tally,
  verdict, workPath
} from './harness.mjs'

const CLIENTS_CLI = path.join(ROOT, 'dist', 'cli', 'clients.js')
const GRANT_FLOOR_SCRIPT = fileURLToPath(new URL('grant-floor-server.mjs', import.meta.url))

const ROUNDS = positiveInteger('BENCH_ROUNDS', 3)
const SLICES = positiveInteger('BENCH_SECONDS', 5)
const SLICE_SECONDS = 1
const CONNECTIONS = 32
const TARGET_GRANTS_PER_BARE = 0.5
const CLIENT_ID = 'bench-client'
const EXCHANGER_ID = 'bench-exchanger'
const TAG = 'bench:grants'

async function slice (target, request, status, into) {
  const cpuBefore = cpuSeconds(target.pid)
  const result = await autocannon({ url: target.url, connections: CONNECTIONS, duration: SLICE_SECONDS, requests: [request] })
  into.count += countOnly(result, status, `${request.path} on ${target.name}`)
  into.seconds += result.duration
  into.cpuSeconds += cpuSeconds(target.pid) - cpuBefore
}

async function main () {
  const redisUrl = await startRedis()
  if (redisUrl === undefined) {
    progress(TAG, 'redis-server not found: skipped')
    return
  }
  const keyFile = workPath('jwt-signing-key.pem')
  const env = serviceEnv({
    LOG_LEVEL: 'info',
    DATA_DIR: workPath('data'),
    REDIS_URL: redisUrl,
    JWT_PRIVATE_KEY_FILE: keyFile,
    TOKEN_GRANT_RATE_MAX: '1000000000',
    TOKEN_GRANT_RATE_WINDOW_MS: '1000'
  })
  progress(TAG, 'registering the client and starting the services')
  await run([KEYS_CLI, 'generate', keyFile], { env })
  const secret = (await run([CLIENTS_CLI, 'add', CLIENT_ID, '--scope', 'orders:read orders:write', '--audience', 'https://orders.internal'], { env })).trim()
  // It may exchange the first client's tokens (it serves their resource) for billing's.
  const exchangerSecret = (await run([CLIENTS_CLI, 'add', EXCHANGER_ID, '--scope', 'orders:read', '--audience', 'https://billing.internal',
    '--serves', 'https://orders.internal', '--exchange-audience', 'https://billing.internal'], { env })).trim()
  const service = await startServer('service-redis-info', SERVER_SCRIPT, { ...env, JWT_ISSUER: `http://${HOST}` })
  const bare = await startServer('bare-fastify', BARE_SERVER_SCRIPT, process.env)
  const floor = await startServer('grant-floor', GRANT_FLOOR_SCRIPT, { ...process.env, REDIS_URL: redisUrl })

  const grantRequest = {
    method: 'POST',
    path: '/oauth2/token',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      authorization: `Basic ${Buffer.from(`${CLIENT_ID}:${secret}`).toString('base64')}`
    },
    body: 'grant_type=client_credentials&scope=orders%3Aread'
  }
  // The service starts without waiting for Redis: the first grant shows it is connected.
  await sleep(500)
  const first = await request(`${service.url}/oauth2/token`, { method: 'POST', headers: grantRequest.headers, body: grantRequest.body })
  const firstBody = first.json()
  if (first.status !== 200 || typeof firstBody.access_token !== 'string') throw new Error(`a grant answered ${first.status} ${JSON.stringify(firstBody)}`)
  const exchangeRequest = {
    method: 'POST',
    path: '/oauth2/token',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      authorization: `Basic ${Buffer.from(`${EXCHANGER_ID}:${exchangerSecret}`).toString('base64')}`
    },
    body: new URLSearchParams({
      grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
      subject_token: firstBody.access_token,
      subject_token_type: 'urn:ietf:params:oauth:token-type:access_token',
      resource: 'https://billing.internal'
    }).toString()
  }
  const exchanged = await request(`${service.url}/oauth2/token`, { method: 'POST', headers: exchangeRequest.headers, body: exchangeRequest.body })
  if (exchanged.status !== 200) throw new Error(`an exchange answered ${exchanged.status} ${JSON.stringify(exchanged.json())}`)
  const bareRequest = { method: 'POST', path: '/api/auth/login', headers: { 'content-type': 'application/json' }, body: '{}' }
  const grants = { target: service, request: grantRequest, status: 200 }
  const exchanges = { target: service, request: exchangeRequest, status: 200 }
  const bareRoute = { target: bare, request: bareRequest, status: 429 }
  const grantFloor = { target: floor, request: grantRequest, status: 200 }
  const measured = [grants, exchanges, bareRoute, grantFloor]

  progress(TAG, 'warming up')
  for (const { target, request, status } of measured) await slice(target, request, status, tally())

  const rounds = []
  for (let round = 1; round <= ROUNDS; round++) {
    const tallies = new Map(measured.map((measurement) => [measurement, tally()]))
    progress(TAG, `round ${round}/${ROUNDS}: grants, exchanges, the bare route and the grant floor, ${SLICES} x ${SLICE_SECONDS} s each`)
    await takeTurns(SLICES, measured.map((measurement) => () => slice(measurement.target, measurement.request, measurement.status, tallies.get(measurement))))
    rounds.push(tallies)
  }

  const column = (measurement, value) => rounds.map((tallies) => value(tallies.get(measurement)))
  const grantsPerSecond = column(grants, perSecond)
  const exchangesPerSecond = column(exchanges, perSecond)
  const barePerSecond = column(bareRoute, perSecond)
  const floorPerSecond = column(grantFloor, perSecond)
  const ratio = grantsPerSecond.map((value, i) => value / barePerSecond[i])
  const passed = median(ratio) >= TARGET_GRANTS_PER_BARE
  const rows = [
    { label: `grants/s, Redis mode, info, client_secret_basic (${CONNECTIONS} conns)`, values: grantsPerSecond, format: formatRate },
    { label: `bare fastify req/s (${CONNECTIONS} conns)`, values: barePerSecond, format: formatRate },
    { label: 'grants / bare', values: ratio, format: formatRatio, target: `>= ${TARGET_GRANTS_PER_BARE}`, result: verdict(passed) },
    { label: '   grants per CPU second of the service', values: column(grants, perCpuSecond), format: formatRate, target: '(info)' },
    { label: `exchanges/s, RFC 8693, a client token as subject (${CONNECTIONS} conns)`, values: exchangesPerSecond, format: formatRate, target: '(info)' },
    { label: '   exchanges / grants', values: exchangesPerSecond.map((value, i) => value / grantsPerSecond[i]), format: formatRatio, target: '(info)' },
    { label: 'grant floor/s: one Redis read, one signature', values: floorPerSecond, format: formatRate, target: '(info)' },
    { label: '   floor / bare', values: floorPerSecond.map((value, i) => value / barePerSecond[i]), format: formatRatio, target: '(info)' },
    { label: '   grants / floor', values: grantsPerSecond.map((value, i) => value / floorPerSecond[i]), format: formatRatio, target: '(info)' }
  ].filter(({ values }) => values.every(Number.isFinite))
  printReport([
    `Client-credentials grant benchmark: ${ROUNDS} rounds, each measurement ${SLICES} x ${SLICE_SECONDS} s per round taking turns; medians of rounds`,
    `node ${process.version}, ${availableParallelism()} CPUs, JWT_ALGORITHM=EdDSA, one client, the grant limit on (never reached)`
  ].join('\n'), ROUNDS, rows, [`${verdict(passed)}  grants/s / bare fastify req/s >= ${TARGET_GRANTS_PER_BARE}: ${formatRatio(median(ratio))} (${formatRate(median(grantsPerSecond))} grants/s)`])
}

await runBenchmark(TAG, main)
