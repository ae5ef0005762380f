import { execFile, spawn } from 'node:child_process'
import { once } from 'node:events'
import { readFile, writeFile } from 'node:fs/promises'
import http from 'node:http'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import t, { type Test } from 'tap'
import { PASSWORD, nodeArgs, redisMode, runScript, tempDir } from '../helper.ts'
import { freePort } from '../redis-server.ts'

// The compose topology on this machine: one Redis, three replicas of src/server.ts sharing it and
// one signing key, and a real nginx running the very nginx.conf compose mounts. Every login goes
// through nginx; only the replicas' metrics are read directly.

const DEPLOY_NGINX = fileURLToPath(new URL('../../deploy/nginx/', import.meta.url))
const NGINX_MISSING = 'nginx is not installed: this test runs deploy/nginx/nginx.conf with a real nginx (apt-get install -y nginx-light)'
const REPLICAS = 3
// nginx's own address towards the replicas, and the only proxy they trust.
const NGINX_ADDRESS = '127.0.0.1'
// Two clients told apart by their source address (all of 127.0.0.0/8 is loopback). Client A shares
// nginx's trusted address, as host clients share the docker gateway's address inside compose's
// TRUST_PROXY range: for such a client, only an nginx that overwrites X-Forwarded-For (rather than
// appending to it) keeps a client-sent address from being believed.
const CLIENT_A = '127.0.0.1'
const CLIENT_B = '127.0.0.2'

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** `text` with the one line matching `pattern` replaced; any other number of matches is an error naming `file`. */
function replaceOnce (text: string, file: string, pattern: RegExp, replacement: (...groups: string[]) => string): string {
  const count = text.match(new RegExp(pattern.source, `${pattern.flags}g`))?.length ?? 0
  if (count !== 1) throw new Error(`expected one line matching ${String(pattern)} in ${file}, found ${count}`)
  return text.replace(pattern, replacement)
}

/**
 * Starts a long-running process, stopped with `stopSignal` when the test ends, and waits until
 * `readyUrl` answers 200. Its stdout is discarded: nginx opens /dev/stdout by name, which fails
 * on a pipe. Fails with the process's stderr if it exits first or is not ready within 60 s.
 */
async function startProcess (t: Test, command: string, args: string[], env: Record<string, string>, readyUrl: string, stopSignal: NodeJS.Signals): Promise<void> {
  const child = spawn(command, args, { env, stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk })
  const exited = once(child, 'exit')
  t.teardown(async () => {
    if (child.exitCode !== null || child.signalCode !== null) return
    child.kill(stopSignal)
    await exited
  })
  const deadline = Date.now() + 60_000
  while (!(await fetch(readyUrl).then((response) => response.ok, () => false))) {
    if (child.exitCode !== null) throw new Error(`${command} exited with code ${child.exitCode} before ${readyUrl} was ready:\n${stderr}`)
    if (Date.now() > deadline) throw new Error(`${command} did not make ${readyUrl} ready within 60 s:\n${stderr}`)
    await sleep(100)
  }
}

interface Replica {
  port: number
  metricsPort: number
}

async function startReplica (t: Test, env: Record<string, string>): Promise<Replica> {
  const replica = { port: await freePort(), metricsPort: await freePort() }
  await startProcess(t, process.execPath, nodeArgs('src/server.ts'), {
    ...env, PORT: String(replica.port), METRICS_PORT: String(replica.metricsPort)
  }, `http://127.0.0.1:${replica.port}/health/ready`, 'SIGKILL')
  return replica
}

/** Fails (rather than skips) without nginx: CI installs it, and this is the only test of nginx.conf. */
async function requireNginx (): Promise<void> {
  await promisify(execFile)('nginx', ['-v']).catch((error: NodeJS.ErrnoException) => {
    throw error.code === 'ENOENT' ? new Error(NGINX_MISSING) : error
  })
}

/**
 * deploy/nginx/nginx.conf and upstream.conf copied into a temp prefix, changed only where this
 * machine differs from compose: nginx listens on a free loopback port instead of the fixed 8080,
 * and the upstream group lists the local replicas in place of compose's `auth` name, with the same
 * server parameters and keepalive. Started as the file's header says. Returns nginx's port.
 */
async function startNginx (t: Test, replicas: Replica[]): Promise<number> {
  const prefix = await tempDir(t, 'nginx-topology-')
  const port = await freePort()
  const config = await readFile(path.join(DEPLOY_NGINX, 'nginx.conf'), 'utf8')
  await writeFile(path.join(prefix, 'nginx.conf'), replaceOnce(config, 'nginx.conf', /^(\s*)listen 8080;$/m,
    (_line, indent) => `${indent}listen ${NGINX_ADDRESS}:${port};`))
  const upstream = await readFile(path.join(DEPLOY_NGINX, 'upstream.conf'), 'utf8')
  await writeFile(path.join(prefix, 'upstream.conf'), replaceOnce(upstream, 'upstream.conf', /^(\s*)server auth:3000(.*);$/m,
    (_line, indent, parameters) => replicas.map((replica) => `${indent}server 127.0.0.1:${replica.port}${parameters};`).join('\n')))
  // SIGTERM, not SIGKILL: a killed master would leave its workers serving.
  await startProcess(t, 'nginx', ['-p', `${prefix}/`, '-c', path.join(prefix, 'nginx.conf'), '-g', `daemon off; pid ${path.join(prefix, 'nginx.pid')};`],
    { PATH: process.env.PATH ?? '' }, `http://127.0.0.1:${port}/health/ready`, 'SIGTERM')
  return port
}

interface Attempt {
  status: number
  /** The JSON body, or the text of one that is not JSON (an nginx error page). */
  body: unknown
}

/** alice's login attempt (with her right password) through nginx, from the client `agent` stands for. */
async function login (nginxPort: number, agent: http.Agent, headers: Record<string, string> = {}): Promise<Attempt> {
  return await new Promise((resolve, reject) => {
    const request = http.request({
      host: '127.0.0.1',
      port: nginxPort,
      path: '/api/auth/login',
      method: 'POST',
      agent,
      headers: { 'content-type': 'application/json', ...headers }
    }, (response) => {
      let body = ''
      response.setEncoding('utf8').on('data', (chunk: string) => { body += chunk })
      response.on('end', () => {
        const status = response.statusCode ?? 0
        try {
          resolve({ status, body: JSON.parse(body) })
        } catch {
          resolve({ status, body })
        }
      })
    })
    request.on('error', reject)
    request.end(JSON.stringify({ username: 'alice', password: PASSWORD }))
  })
}

/** Per-outcome counts of auth_login_attempts_total, read from a replica's own metrics port. */
async function loginAttempts (replica: Replica): Promise<Record<string, number>> {
  const text = await (await fetch(`http://127.0.0.1:${replica.metricsPort}/metrics`)).text()
  return Object.fromEntries([...text.matchAll(/^auth_login_attempts_total\{outcome="(\w+)"\} (\d+)$/gm)]
    .map(([, outcome, count]) => [outcome, Number(count)]))
}

t.test('the compose topology: three replicas on one Redis behind nginx', async (t) => {
  await requireNginx()
  const { env: redisEnv } = await redisMode(t)
  const serviceEnv = {
    PATH: process.env.PATH ?? '',
    ...redisEnv,
    DATA_DIR: await tempDir(t),
    HOST: '127.0.0.1',
    LOG_LEVEL: 'warn',
    TRUST_PROXY: NGINX_ADDRESS
  }
  // Each its own process, so all at once.
  const [added, replicas] = await Promise.all([
    runScript('src/cli/users.ts', ['add', 'alice'], { env: serviceEnv, input: `${PASSWORD}\n` }),
    Promise.all(Array.from({ length: REPLICAS }, async () => await startReplica(t, serviceEnv)))
  ])
  if (added.code !== 0) throw new Error(`users add alice failed: ${added.stderr}`)
  const nginxPort = await startNginx(t, replicas)

  /** A client with one source address and one kept-alive connection to nginx. */
  const client = (localAddress: string): http.Agent => {
    // One connection, so one nginx worker serves the client: without a shared zone in the upstream
    // group each worker round-robins on its own from the first server, so requests spread over
    // workers could all reach the same replica.
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1, localAddress })
    t.teardown(() => agent.destroy())
    return agent
  }
  const clientA = client(CLIENT_A)
  const clientB = client(CLIENT_B)

  // The tests below run in order and build on each other: client A uses up its limit first.
  const attemptsOfA: Attempt[] = []
  for (let i = 0; i < 8; i++) attemptsOfA.push(await login(nginxPort, clientA))

  t.test('a login through nginx returns the contract envelope', async (t) => {
    t.match(attemptsOfA[0], {
      status: 200,
      body: {
        data: { accessToken: /^[\w-]+\.[\w-]+\.[\w-]+$/, tokenType: 'Bearer', username: 'alice' },
        message: 'Authentication successful'
      }
    }, 'alice is logged in')
  })

  t.test('the per-IP limit holds across the replicas', async (t) => {
    t.same(attemptsOfA.map((attempt) => attempt.status), [200, 200, 200, 200, 200, 429, 429, 429], 'exactly 5 of 8 attempts admitted')
    t.match(attemptsOfA[7].body, { message: /^Too many login attempts, retry in / }, 'limited by the per-IP limit')

    const perReplica = await Promise.all(replicas.map(loginAttempts))
    const total: Record<string, number> = {}
    for (const [outcome, count] of perReplica.flatMap(Object.entries)) total[outcome] = (total[outcome] ?? 0) + count
    t.same(total, { success: 5, rate_limited: 3 }, `each attempt reached exactly one replica: ${JSON.stringify(perReplica)}`)
    t.ok(perReplica.filter((counts) => (counts.success ?? 0) > 0).length >= 2,
      `the admitted attempts were served by more than one replica: ${JSON.stringify(perReplica)}`)
  })

  t.test('another client is not affected by client A\'s limit', async (t) => {
    t.match(await login(nginxPort, clientB), { status: 200, body: { data: { username: 'alice' } } }, 'client B is admitted')
  })

  t.test('a client-sent X-Forwarded-For does not escape the limit', async (t) => {
    const spoofs: Array<Record<string, string>> = [
      { 'x-forwarded-for': '203.0.113.7' },
      { 'x-forwarded-for': '203.0.113.7, 198.51.100.9' },
      { 'x-forwarded-for': CLIENT_B },
      { 'x-forwarded-for': '203.0.113.7', 'x-real-ip': '203.0.113.7', forwarded: 'for=203.0.113.7' }
    ]
    for (const headers of spoofs) {
      t.match(await login(nginxPort, clientA, headers), { status: 429 }, `client A sending ${JSON.stringify(headers)} is still limited`)
    }
  })
})
