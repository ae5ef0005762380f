// Client-credentials grant benchmark, run on the built dist/ (`npm run bench` builds first).
//
// Starts, as child processes on free loopback ports with temporary data: a throwaway redis-server,
// the service in Redis mode (LOG_LEVEL=info as in production) with one client registered through
// the clients CLI, and the bare Fastify server of bench/bare-server.mjs. Then measures token
// grants/s at saturation (POST /oauth2/token, client_secret_basic, many connections, every
// response a 200 with a fresh signed token) beside the bare route's req/s, in 1 s slices that take
// turns so both see the same moments of a shared machine (the approach of bench/login.mjs), and
// prints every round and the median of rounds. The grant limit stays on, with a window of 1 s and
// a max no run reaches, so its Redis work is measured but never answers 429.
// Exits 0 whether or not the target is met, 1 when something broke. BENCH_ROUNDS (3) and
// BENCH_SECONDS (5, per measurement per round) override the length; exits 0 without measuring
// when redis-server is not installed.
import { spawn } from 'node:child_process'
import { closeSync, openSync, readFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { connect, createServer } from 'node:net'
import { availableParallelism, constants, tmpdir } from 'node:os'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import autocannon from 'autocannon'
import { ConfigSchema } from '../dist/config.js'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const SERVER_SCRIPT = path.join(ROOT, 'dist', 'server.js')
const CLIENTS_CLI = path.join(ROOT, 'dist', 'cli', 'clients.js')
const KEYS_CLI = path.join(ROOT, 'dist', 'cli', 'keys.js')
const BARE_SERVER_SCRIPT = fileURLToPath(new URL('bare-server.mjs', import.meta.url))

const ROUNDS = positiveInteger('BENCH_ROUNDS', 3)
const SLICES = positiveInteger('BENCH_SECONDS', 5)
const SLICE_SECONDS = 1
const HOST = '127.0.0.1'
const CONNECTIONS = 32
const TARGET_GRANTS_PER_BARE = 0.5
const CLIENT_ID = 'bench-client'

const children = new Set()
let workDir

function positiveInteger (name, defaultValue) {
  const value = process.env[name] === undefined ? defaultValue : Number(process.env[name])
  if (!Number.isInteger(value) || value < 1) throw new Error(`${name} must be a positive integer`)
  return value
}

function progress (message) {
  process.stderr.write(`[bench:grants] ${message}\n`)
}

// ---------- child processes ----------

function track (child) {
  children.add(child)
  child.once('exit', () => children.delete(child))
  return child
}

/** Runs a command to completion and returns its stdout; a non-zero exit is an error carrying its output. */
function run (args, env) {
  return new Promise((resolve, reject) => {
    const child = track(spawn(process.execPath, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] }))
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (chunk) => { stdout += chunk })
    child.stderr.on('data', (chunk) => { stderr += chunk })
    child.once('error', reject)
    child.once('close', (code, signal) => {
      if (code === 0) resolve(stdout)
      else reject(new Error(`${path.relative(ROOT, args[0])} ${args.slice(1).join(' ')} exited with ${code ?? signal}:\n${stderr}`))
    })
  })
}

async function freePort () {
  const server = createServer()
  await new Promise((resolve, reject) => server.once('error', reject).listen(0, HOST, resolve))
  const { port } = server.address()
  await new Promise((resolve) => server.close(resolve))
  return port
}

function logTail (logFile) {
  try {
    return readFileSync(logFile, 'utf8').trimEnd().split('\n').slice(-20).join('\n')
  } catch {
    return '(no log)'
  }
}

/** Starts a server script with its output in a log file, and waits until GET /health/live answers. */
async function startServer (name, script, env) {
  const port = await freePort()
  const metricsPort = await freePort()
  const logFile = path.join(workDir, `${name}.log`)
  const log = openSync(logFile, 'a')
  const child = track(spawn(process.execPath, [script], { cwd: ROOT, env: { ...env, HOST, PORT: String(port), METRICS_PORT: String(metricsPort) }, stdio: ['ignore', log, log] }))
  closeSync(log)
  const url = `http://${HOST}:${port}`
  const deadline = Date.now() + 20_000
  while (true) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`${name} exited during start-up:\n${logTail(logFile)}`)
    try {
      if ((await fetch(`${url}/health/live`)).ok) return { name, url, pid: child.pid }
    } catch { /* not listening yet */ }
    if (Date.now() > deadline) throw new Error(`${name} did not answer GET /health/live within 20 s:\n${logTail(logFile)}`)
    await sleep(100)
  }
}

/** A throwaway redis-server without persistence; undefined when redis-server is not installed. */
async function startRedis () {
  const port = await freePort()
  const child = track(spawn('redis-server', ['--port', String(port), '--bind', HOST, '--save', '', '--appendonly', 'no'], { stdio: 'ignore' }))
  const spawned = await new Promise((resolve) => {
    child.once('spawn', () => resolve(true))
    child.once('error', () => resolve(false))
  })
  if (!spawned) return undefined
  const deadline = Date.now() + 10_000
  while (!await acceptsConnections(port)) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error('redis-server did not start')
    await sleep(100)
  }
  return `redis://${HOST}:${port}`
}

function acceptsConnections (port) {
  return new Promise((resolve) => {
    const connection = connect(port, HOST)
    connection.once('connect', () => { connection.destroy(); resolve(true) })
    connection.once('error', () => resolve(false))
  })
}

/** CPU seconds a process has used, all its threads included, from /proc (Linux); undefined elsewhere. */
function cpuSeconds (pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return (Number(fields[11]) + Number(fields[12])) / 100
  } catch {
    return undefined
  }
}

async function stopChildren () {
  await Promise.all([...children].map((child) => new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve()
    const kill = setTimeout(() => child.kill('SIGKILL'), 5000)
    child.once('exit', () => { clearTimeout(kill); resolve() })
    child.kill('SIGTERM')
  })))
}

async function cleanUp () {
  await stopChildren()
  if (workDir !== undefined) await rm(workDir, { recursive: true, force: true })
}

/** This shell's environment less every service setting, plus the given ones: a stray setting must not change what is measured. */
function serviceEnv (settings) {
  const env = { ...process.env }
  for (const name of Object.keys(ConfigSchema.properties)) delete env[name]
  return { ...env, LOG_LEVEL: 'info', ...settings }
}

// ---------- measurements ----------

/** How many responses had `status`; anything else (another status, an error, a timeout) is a failure. */
function countOnly (result, status, what) {
  const counts = Object.fromEntries(Object.entries(result.statusCodeStats).map(([code, { count }]) => [code, count]))
  const expected = counts[status] ?? 0
  if (expected === 0 || Object.keys(counts).some((code) => Number(code) !== status) || result.errors > 0 || result.timeouts > 0) {
    throw new Error(`${what}: expected every response to be ${status}, got statuses ${JSON.stringify(counts)}, ${result.errors} errors, ${result.timeouts} timeouts`)
  }
  return expected
}

function tally () {
  return { count: 0, seconds: 0, cpuSeconds: 0 }
}

async function slice (target, request, status, into) {
  const cpuBefore = cpuSeconds(target.pid)
  const result = await autocannon({ url: target.url, connections: CONNECTIONS, duration: SLICE_SECONDS, requests: [request] })
  into.count += countOnly(result, status, `${request.path} on ${target.name}`)
  into.seconds += result.duration
  into.cpuSeconds += cpuSeconds(target.pid) - cpuBefore
}

async function takeTurns (slices) {
  for (let turn = 0; turn < SLICES; turn++) {
    for (let i = 0; i < slices.length; i++) await slices[(turn + i) % slices.length]()
  }
}

function median (values) {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
}

const formatRate = (value) => value >= 100 ? value.toFixed(0) : value.toFixed(1)
const formatRatio = (value) => value.toFixed(3)

function printReport (header, rows, verdicts) {
  const table = [['measurement', ...Array.from({ length: ROUNDS }, (_, i) => `round ${i + 1}`), 'median', 'target', 'result']]
  for (const { label, values, format, target = '', result = '' } of rows) table.push([label, ...values.map(format), format(median(values)), target, result])
  const widths = table[0].map((_, column) => Math.max(...table.map((cells) => cells[column].length)))
  const line = (cells) => cells.map((cell, column) => column === 0 ? cell.padEnd(widths[column]) : cell.padStart(widths[column])).join('  ').trimEnd()
  process.stdout.write(`${[header, '', line(table[0]), widths.map((width) => '-'.repeat(width)).join('  '), ...table.slice(1).map(line), '', ...verdicts].join('\n')}\n`)
}

// ---------- the run ----------

async function main () {
  workDir = await mkdtemp(path.join(tmpdir(), 'grants-bench-'))
  const redisUrl = await startRedis()
  if (redisUrl === undefined) {
    progress('redis-server not found: skipped')
    return
  }
  const keyFile = path.join(workDir, 'jwt-signing-key.pem')
  const env = serviceEnv({
    DATA_DIR: path.join(workDir, 'data'),
    REDIS_URL: redisUrl,
    JWT_PRIVATE_KEY_FILE: keyFile,
    TOKEN_GRANT_RATE_MAX: '1000000000',
    TOKEN_GRANT_RATE_WINDOW_MS: '1000'
  })
  progress('registering the client and starting the services')
  await run([KEYS_CLI, 'generate', keyFile], env)
  const secret = (await run([CLIENTS_CLI, 'add', CLIENT_ID, '--scope', 'orders:read orders:write', '--audience', 'https://orders.internal'], env)).trim()
  const service = await startServer('service-redis-info', SERVER_SCRIPT, { ...env, JWT_ISSUER: 'http://127.0.0.1' })
  const bare = await startServer('bare-fastify', BARE_SERVER_SCRIPT, process.env)

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
  const first = await fetch(`${service.url}/oauth2/token`, { method: 'POST', headers: grantRequest.headers, body: grantRequest.body })
  const firstBody = await first.json()
  if (first.status !== 200 || typeof firstBody.access_token !== 'string') throw new Error(`a grant answered ${first.status} ${JSON.stringify(firstBody)}`)
  const bareRequest = { method: 'POST', path: '/api/auth/login', headers: { 'content-type': 'application/json' }, body: '{}' }

  progress('warming up')
  await slice(service, grantRequest, 200, tally())
  await slice(bare, bareRequest, 429, tally())

  const rounds = []
  for (let round = 1; round <= ROUNDS; round++) {
    const grants = tally()
    const bareRequests = tally()
    progress(`round ${round}/${ROUNDS}: grants and the bare route, ${SLICES} x ${SLICE_SECONDS} s each`)
    await takeTurns([() => slice(service, grantRequest, 200, grants), () => slice(bare, bareRequest, 429, bareRequests)])
    rounds.push({ grants, bare: bareRequests })
  }

  const column = (value) => rounds.map(value)
  const grantsPerSecond = column((r) => r.grants.count / r.grants.seconds)
  const barePerSecond = column((r) => r.bare.count / r.bare.seconds)
  const ratio = grantsPerSecond.map((value, i) => value / barePerSecond[i])
  const passed = median(ratio) >= TARGET_GRANTS_PER_BARE
  const rows = [
    { label: `grants/s, Redis mode, info, client_secret_basic (${CONNECTIONS} conns)`, values: grantsPerSecond, format: formatRate },
    { label: `bare fastify req/s (${CONNECTIONS} conns)`, values: barePerSecond, format: formatRate },
    { label: 'grants / bare', values: ratio, format: formatRatio, target: `>= ${TARGET_GRANTS_PER_BARE}`, result: passed ? 'PASS' : 'FAIL' }
  ]
  const perCpu = column((r) => r.grants.count / r.grants.cpuSeconds)
  if (perCpu.every(Number.isFinite)) rows.push({ label: '   grants per CPU second of the service', values: perCpu, format: formatRate, target: '(info)' })
  printReport([
    `Client-credentials grant benchmark: ${ROUNDS} rounds, each measurement ${SLICES} x ${SLICE_SECONDS} s per round taking turns; medians of rounds`,
    `node ${process.version}, ${availableParallelism()} CPUs, JWT_ALGORITHM=EdDSA, one client, the grant limit on (never reached)`
  ].join('\n'), rows, [`${passed ? 'PASS' : 'FAIL'}  grants/s / bare fastify req/s >= ${TARGET_GRANTS_PER_BARE}: ${formatRatio(median(ratio))} (${formatRate(median(grantsPerSecond))} grants/s)`])
}

let stopping = false
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => {
    stopping = true
    progress(`${signal}: stopping`)
    cleanUp().finally(() => process.exit(128 + constants.signals[signal]))
  })
}
let exitCode = 0
try {
  await main()
} catch (error) {
  if (!stopping) process.stderr.write(`\nbenchmark failed: ${error.message}\n`)
  exitCode = 1
}
if (!stopping) {
  await cleanUp()
  process.exit(exitCode)
}
