// What the benchmarks share: child processes on free loopback ports with their output in a work
// directory, a throwaway redis-server, CPU and memory readings from /proc, slices that take turns,
// and the report of rounds and their medians. Each benchmark script runs its `main` through
// runBenchmark, which stops every child and removes the work directory however the run ends.
import { spawn } from 'node:child_process'
import { closeSync, openSync, readFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { request as httpRequest } from 'node:http'
import { connect, createServer } from 'node:net'
import { constants, tmpdir } from 'node:os'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { ConfigSchema } from '../dist/config.js'

export const ROOT = fileURLToPath(new URL('..', import.meta.url))
export const HOST = '127.0.0.1'
export const SERVER_SCRIPT = path.join(ROOT, 'dist', 'server.js')
export const KEYS_CLI = path.join(ROOT, 'dist', 'cli', 'keys.js')
export const BARE_SERVER_SCRIPT = fileURLToPath(new URL('bare-server.mjs', import.meta.url))

const children = new Set()
/** The children that lead a process group of their own (spawned detached). */
const groupLeaders = new WeakSet()
let workDir

/** An environment variable that must be a positive integer, or its default. */
export function positiveInteger (name, defaultValue) {
  const value = process.env[name] === undefined ? defaultValue : Number(process.env[name])
  if (!Number.isInteger(value) || value < 1) throw new Error(`${name} must be a positive integer`)
  return value
}

/** A progress line on stderr, so stdout holds only the report. */
export function progress (tag, message) {
  process.stderr.write(`[${tag}] ${message}\n`)
}

/** A file path in this run's work directory. */
export function workPath (name) {
  return path.join(workDir, name)
}

// ---------- child processes ----------

/** Keeps a child process to be stopped when the run ends. */
export function track (child) {
  children.add(child)
  child.once('exit', () => children.delete(child))
  return child
}

/** Runs a node script to completion and resolves to its stdout; a non-zero exit is an error carrying its output. */
export function run (args, { env, input }) {
  return new Promise((resolve, reject) => {
    const child = track(spawn(process.execPath, args, { cwd: ROOT, env, stdio: ['pipe', 'pipe', 'pipe'] }))
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (chunk) => { stdout += chunk })
    child.stderr.on('data', (chunk) => { stderr += chunk })
    child.once('error', reject)
    child.once('close', (code, signal) => {
      if (code === 0) resolve(stdout)
      else reject(new Error(`${path.relative(ROOT, args[0])} ${args.slice(1).join(' ')} exited with ${code ?? signal}:\n${stderr}${stdout}`))
    })
    child.stdin.end(input)
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

/**
 * One request on a connection of its own: fetch would reuse an idle keep-alive connection, which
 * the server may be closing at that very moment (keepAliveTimeout), and fail with "other side closed".
 */
export function request (url, { method = 'GET', headers = {}, body } = {}) {
  return new Promise((resolve, reject) => {
    const outgoing = httpRequest(url, { method, headers, agent: false }, (response) => {
      let text = ''
      response.setEncoding('utf8')
      response.on('data', (chunk) => { text += chunk })
      response.on('end', () => resolve({ status: response.statusCode, ok: response.statusCode >= 200 && response.statusCode < 300, json: () => JSON.parse(text) }))
      response.on('error', reject)
    })
    outgoing.on('error', reject)
    outgoing.end(body)
  })
}

/**
 * The pid of the first process below `pid` (itself excluded) whose command line runs `script`
 * (relative to ROOT, or absolute, as the service's restart with its memory settings names it), from /proc (Linux).
 */
function descendantRunning (pid, script) {
  const children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(' ').filter((child) => child !== '')
  for (const child of children) {
    if (readFileSync(`/proc/${child}/cmdline`, 'utf8').split('\0').some((arg) => path.resolve(ROOT, arg) === path.resolve(ROOT, script))) return Number(child)
    const below = descendantRunning(child, script)
    if (below !== undefined) return below
  }
  return undefined
}

/**
 * Starts a server script with its output in a log file, and waits until GET /health/live answers.
 * With `npmStart`, through `npm start` as the README's quick start runs the service (the script
 * must be the one it starts): the pid is then the server's, below npm's, which forwards SIGTERM.
 */
export async function startServer (name, script, env, { npmStart = false } = {}) {
  const port = await freePort()
  // The service also serves Prometheus metrics on a port of its own (the reference servers ignore it).
  const metricsPort = await freePort()
  const logFile = workPath(`${name}.log`)
  const log = openSync(logFile, 'a')
  const [command, args] = npmStart ? ['npm', ['start', '--silent']] : [process.execPath, [script]]
  // npm start in a process group of its own, stopped as a group: the server below npm outlived a
  // SIGTERM and SIGKILL sent to npm alone.
  const child = track(spawn(command, args, { cwd: ROOT, env: { ...env, HOST, PORT: String(port), METRICS_PORT: String(metricsPort) }, stdio: ['ignore', log, log], detached: npmStart }))
  if (npmStart) groupLeaders.add(child)
  closeSync(log)
  const url = `http://${HOST}:${port}`
  const deadline = Date.now() + 20_000
  while (true) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`${name} exited during start-up:\n${logTail(logFile)}`)
    }
    const live = await request(`${url}/health/live`).then(({ ok }) => ok, () => false /* not listening yet */)
    if (live) {
      const pid = npmStart ? descendantRunning(child.pid, path.relative(ROOT, script)) : child.pid
      if (pid === undefined) throw new Error(`${name}: no process below npm start runs ${path.relative(ROOT, script)}`)
      return { name, url, pid, metricsUrl: `http://${HOST}:${metricsPort}/metrics` }
    }
    if (Date.now() > deadline) throw new Error(`${name} did not answer GET /health/live within 20 s:\n${logTail(logFile)}`)
    await sleep(100)
  }
}

function acceptsConnections (port) {
  return new Promise((resolve) => {
    const connection = connect(port, HOST)
    connection.once('connect', () => { connection.destroy(); resolve(true) })
    connection.once('error', () => resolve(false))
  })
}

/** A throwaway redis-server without persistence; undefined when redis-server is not installed. */
export async function startRedis () {
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

/**
 * This shell's environment less every service setting but those `keep` names, plus the given
 * settings: a stray REDIS_URL or RATE_LIMIT_MAX in the shell must not change what is measured.
 */
export function serviceEnv (settings, keep = () => false) {
  const env = { ...process.env }
  for (const name of Object.keys(ConfigSchema.properties)) {
    if (!keep(name)) delete env[name]
  }
  return { ...env, ...settings }
}

// ---------- readings ----------

/**
 * CPU seconds a process has used, all its threads included (or its main thread only, the event
 * loop's), from /proc (Linux); undefined elsewhere.
 * On a machine shared with other work, throughput follows the CPU the bench happens to get, while
 * work per CPU second does not: it tells overhead from noise.
 */
export function cpuSeconds (pid, { mainThreadOnly = false } = {}) {
  try {
    const stat = readFileSync(mainThreadOnly ? `/proc/${pid}/task/${pid}/stat` : `/proc/${pid}/stat`, 'utf8')
    // After the command name: state is field 3, utime and stime fields 14 and 15, in USER_HZ (100/s).
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return (Number(fields[11]) + Number(fields[12])) / 100
  } catch {
    return undefined
  }
}

/** A process's resident set size now (VmRSS) or its peak so far (VmHWM) in MiB, from /proc (Linux); undefined elsewhere. */
export function rssMiB (pid, field = 'VmRSS') {
  try {
    const kib = new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]
    return kib === undefined ? undefined : Number(kib) / 1024
  } catch {
    return undefined
  }
}

/**
 * How many responses had `status`; anything else (another status, an error, a timeout) is a
 * failure, and so is none at all unless `noneIsFine`.
 */
export function countOnly (result, status, what, noneIsFine = false) {
  const counts = Object.fromEntries(Object.entries(result.statusCodeStats).map(([code, { count }]) => [code, count]))
  const expected = counts[status] ?? 0
  if ((expected === 0 && !noneIsFine) || Object.keys(counts).some((code) => Number(code) !== status) || result.errors > 0 || result.timeouts > 0) {
    throw new Error(`${what}: expected every response to be ${status}, got statuses ${JSON.stringify(counts)}, ${result.errors} errors, ${result.timeouts} timeouts`)
  }
  return expected
}

// ---------- rounds, statistics and report ----------

/** Counts and time summed over a round's slices, so a round's rate is total count / total time. */
export function tally () {
  return { count: 0, attempts: 0, seconds: 0, cpuSeconds: 0, mainThreadCpuSeconds: 0, steadyCount: 0, steadySeconds: 0, latenciesMs: [], peakRss: 0 }
}

export const perSecond = ({ count, seconds }) => count / seconds
export const perCpuSecond = ({ count, cpuSeconds }) => count / cpuSeconds

/**
 * The machine is shared, so a round cuts every measurement into slices that take turns, each turn
 * starting one further along: what is compared sees the same moments.
 */
export async function takeTurns (turns, slices) {
  for (let turn = 0; turn < turns; turn++) {
    for (let i = 0; i < slices.length; i++) await slices[(turn + i) % slices.length]()
  }
}

export function median (values) {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
}

export function percentile (values, fraction) {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.max(0, Math.ceil(fraction * sorted.length) - 1)]
}

export const formatRate = (value) => value >= 100 ? value.toFixed(0) : value.toFixed(1)
export const formatRatio = (value) => value.toFixed(3)
export const verdict = (passed) => passed ? 'PASS' : 'FAIL'

/** The table of rows (each round, the median of rounds, target, result), then the verdict lines. */
export function printReport (header, rounds, rows, verdicts) {
  const table = [['measurement', ...Array.from({ length: rounds }, (_, i) => `round ${i + 1}`), 'median', 'target', 'result']]
  for (const { label, values, format, target = '', result = '' } of rows) {
    table.push([label, ...values.map(format), format(median(values)), target, result])
  }
  const widths = table[0].map((_, column) => Math.max(...table.map((cells) => cells[column].length)))
  const line = (cells) => cells.map((cell, column) => column === 0 ? cell.padEnd(widths[column]) : cell.padStart(widths[column])).join('  ').trimEnd()
  const out = [header, '', line(table[0]), widths.map((width) => '-'.repeat(width)).join('  '), ...table.slice(1).map(line), '', ...verdicts]
  process.stdout.write(`${out.join('\n')}\n`)
}

// ---------- the run ----------

/** Sends a signal to a child, or to its whole process group when it leads one (spawned detached); nothing when none is left. */
function signal (child, name) {
  try {
    if (groupLeaders.has(child)) process.kill(-child.pid, name)
    else child.kill(name)
  } catch {
    // ESRCH: the group has ended.
  }
}

/** SIGTERM to every child still running, SIGKILL to any that ignores it for 5 s, and to what is left of a process group. */
async function stopChildren () {
  await Promise.all([...children].map((child) => new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve()
    const kill = setTimeout(() => signal(child, 'SIGKILL'), 5000)
    child.once('exit', () => { clearTimeout(kill); signal(child, 'SIGKILL'); resolve() })
    signal(child, 'SIGTERM')
  })))
}

async function cleanUp () {
  await stopChildren()
  if (workDir !== undefined) await rm(workDir, { recursive: true, force: true })
}

/**
 * Runs `main` with a fresh work directory, then stops every child and removes the directory. Exits
 * 0 whether or not targets are met, 1 when something broke (an unexpected status, a child that
 * failed), and on SIGINT or SIGTERM stops what it started.
 */
export async function runBenchmark (tag, main) {
  let stopping = false
  for (const signal of ['SIGINT', 'SIGTERM']) {
    process.once(signal, () => {
      stopping = true
      progress(tag, `${signal}: stopping`)
      cleanUp().finally(() => process.exit(128 + constants.signals[signal]))
    })
  }
  let exitCode = 0
  try {
    workDir = await mkdtemp(path.join(tmpdir(), `${tag.replace(/\W/g, '-')}-`))
    await main()
  } catch (error) {
    // After a signal, children are being stopped on purpose: what that breaks is no finding.
    if (!stopping) process.stderr.write(`\nbenchmark failed: ${error.message}${error.cause instanceof Error ? ` (${error.cause.message})` : ''}\n`)
    exitCode = 1
  }
  if (!stopping) {
    await cleanUp()
    process.exit(exitCode)
  }
}
