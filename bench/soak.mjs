// Soak test, run on the built dist/ (`npm run soak` builds first); minutes long, so not in `npm test`.
//
// Two replicas in Redis mode sharing one throwaway redis-server and one signing key, driven at a
// steady SOAK_RATE (60) requests/s, a load both replicas serve on 2 cores without shedding, for
// SOAK_SECONDS (600) with Node's fetch, which keeps connections alive as most clients do. The mix,
// alternating between the replicas:
//   - logins from fresh client addresses (X-Forwarded-For through a trusted proxy address);
//   - floods from a few rotating IPv4 and IPv6 addresses, which the per-IP limit answers with 429;
//   - GET /api/auth/me and POST /api/auth/logout with the tokens obtained, and /me again with each
//     logged-out token, which must be refused (401) on the other replica;
//   - client-credentials grants (client_secret_basic) from a few clients, each token introspected
//     and revoked at the other replica, then introspected at the first, which must call it inactive.
// Counts every answer by route and status (a login's 503 split into shed, the bounded queue's
// answer to overload, and Redis, a store failure, by its body) and every request that got no
// answer (a cut connection, by error code), and samples each replica's resident memory. Exits 1
// when a request was cut, a 5xx was answered, a logged-out or revoked token was accepted, or a
// replica's resident memory reached SOAK_MAX_RSS_MIB (200); 0 otherwise.
import { spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const SERVER_SCRIPT = path.join(ROOT, 'dist', 'server.js')
const USERS_CLI = path.join(ROOT, 'dist', 'cli', 'users.js')
const KEYS_CLI = path.join(ROOT, 'dist', 'cli', 'keys.js')
const HOST = '127.0.0.1'
const CLIENTS_CLI = path.join(ROOT, 'dist', 'cli', 'clients.js')
const SECONDS = Number(process.env.SOAK_SECONDS) || 600
const RATE = Number(process.env.SOAK_RATE) || 60
const MAX_RSS_MIB = Number(process.env.SOAK_MAX_RSS_MIB) || 200
// Several clients, so that grants stay under each client's grant window (TOKEN_GRANT_RATE_MAX).
const CLIENT_IDS = Array.from({ length: 4 }, (_, i) => `soak-client-${i + 1}`)
const AUDIENCE = 'https://orders.soak.internal'
// Several accounts, so that concurrent logins stay under the per-username throttle's threshold.
const USERNAMES = Array.from({ length: 16 }, (_, i) => `soak-user-${i + 1}`)
const PASSWORD = `soak ${crypto.randomUUID()}`
const MEMORY_SAMPLE_MS = 10_000

// Shares of the traffic; /me and logout need a token, so they fall back to a login without one.
const MIX = [['login', 0.25], ['flood', 0.3], ['me', 0.2], ['logout', 0.1], ['grant', 0.15]]
// The 503 bodies of a login (src/routes/auth/login.ts, src/http/errors.ts).
const SHED_MESSAGE = 'Too many logins in progress, retry shortly'
const STORE_MESSAGE = 'Service temporarily unavailable, try again shortly'
const FLOOD_ADDRESSES = [
  ...Array.from({ length: 8 }, (_, i) => `198.51.100.${i + 1}`),
  ...Array.from({ length: 8 }, (_, i) => `2001:db8:${i + 1}::1`)
]

async function freePort () {
  const server = createServer().listen(0, HOST)
  await new Promise((resolve) => server.once('listening', resolve))
  const { port } = server.address()
  await new Promise((resolve) => server.close(resolve))
  return port
}

const children = []
function start (command, args, env) {
  const child = spawn(command, args, { env: { PATH: process.env.PATH, ...env }, stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  child.stderr.setEncoding('utf8').on('data', (chunk) => { stderr = (stderr + chunk).slice(-4000) })
  child.on('exit', (code, signal) => { if (!stopping) fail(`${path.basename(args[0] ?? command)} exited (${code ?? signal}):\n${stderr}`) })
  children.push(child)
  return child
}

/** Runs a CLI to its end; resolves to what it printed on stdout. */
async function run (command, args, env, input = '') {
  const child = spawn(command, args, { env: { PATH: process.env.PATH, ...env }, stdio: ['pipe', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (chunk) => { stdout += chunk })
  child.stderr.setEncoding('utf8').on('data', (chunk) => { stderr += chunk })
  child.stdin.end(input)
  const code = await new Promise((resolve) => child.on('exit', resolve))
  if (code !== 0) fail(`${args.join(' ')} failed: ${stderr}`)
  return stdout
}

async function waitUntilReady (url) {
  for (const deadline = Date.now() + 60_000; Date.now() < deadline; await sleep(100)) {
    if (await fetch(url).then((response) => response.ok, () => false)) return
  }
  fail(`${url} not ready within 60 s`)
}

let stopping = false
function fail (message) {
  console.error(`soak: ${message}`)
  stopping = true
  for (const child of children) child.kill('SIGKILL')
  process.exit(1)
}

function residentMiB (pid) {
  const match = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return match === null ? NaN : Math.round(Number(match[1]) / 1024)
}

const dir = await mkdtemp(path.join(tmpdir(), 'auth-soak-'))
try {
  const redisPort = await freePort()
  start('redis-server', ['--port', String(redisPort), '--bind', HOST, '--save', '', '--appendonly', 'no', '--dir', dir], {})
  const keyFile = path.join(dir, 'jwt.pem')
  await run(process.execPath, [KEYS_CLI, 'generate', keyFile], {})
  await sleep(300)
  const env = {
    REDIS_URL: `redis://${HOST}:${redisPort}`,
    JWT_PRIVATE_KEY_FILE: keyFile,
    DATA_DIR: dir,
    HOST,
    TRUST_PROXY: HOST,
    LOG_LEVEL: 'warn',
    METRICS_PORT: '0'
  }
  await Promise.all(USERNAMES.map((username) => run(process.execPath, [USERS_CLI, 'add', username], env, `${PASSWORD}\n`)))
  // `clients add` prints the secret alone on its first line.
  const clients = await Promise.all(CLIENT_IDS.map(async (id) => {
    const secret = (await run(process.execPath, [CLIENTS_CLI, 'add', id, '--scope', 'orders:read', '--audience', AUDIENCE], env)).split('\n')[0].trim()
    return { id, basic: `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}` }
  }))
  const replicas = []
  for (let i = 0; i < 2; i++) {
    const port = await freePort()
    const child = start(process.execPath, [SERVER_SCRIPT], { ...env, PORT: String(port) })
    replicas.push({ base: `http://${HOST}:${port}`, pid: child.pid, memory: [] })
  }
  for (const replica of replicas) await waitUntilReady(`${replica.base}/health/ready`)

  const answers = new Map()
  const cuts = new Map()
  // How long each cut request had waited: a cut at ~10 s is the server's inactivity timeout, at once a closed connection.
  const cutAfterMs = []
  let revokedAccepted = 0
  let revokedRefused = 0
  let grantRevokedActive = 0
  let grantRevokedInactive = 0
  const tokens = []
  let sent = 0
  let freshAddress = 0
  const count = (map, key) => map.set(key, (map.get(key) ?? 0) + 1)

  async function request (kind, replica, path, init) {
    const sentAt = performance.now()
    try {
      const response = await fetch(`${replica.base}${path}`, init)
      // A revocation's 200 has no body.
      const text = await response.text()
      const body = text === '' ? {} : JSON.parse(text)
      const cause = response.status !== 503 ? '' : body.message === SHED_MESSAGE ? ' shed' : body.message === STORE_MESSAGE ? ' Redis' : ' other'
      count(answers, `${kind} ${response.status}${cause}`)
      return { status: response.status, body }
    } catch (error) {
      count(cuts, `${kind} ${error.cause?.code ?? error.code ?? error.message}`)
      cutAfterMs.push(Math.round(performance.now() - sentAt))
      return undefined
    }
  }

  const login = (replica, address) => request(address === undefined ? 'login' : 'flood', replica, '/api/auth/login', {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-forwarded-for': address ?? `10.${(freshAddress >> 16) & 255}.${(freshAddress >> 8) & 255}.${freshAddress++ & 255}` },
    body: JSON.stringify({ username: USERNAMES[sent % USERNAMES.length], password: PASSWORD })
  })
  const bearer = (token) => ({ authorization: `Bearer ${token}` })

  const form = (client, fields) => ({
    method: 'POST',
    headers: { authorization: client.basic, 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(fields).toString()
  })

  /** A grant at `replica`; its token introspected and revoked at `other`, then introspected at `replica` again. */
  async function grant (replica, other) {
    const client = clients[sent % clients.length]
    const granted = await request('grant', replica, '/oauth2/token', form(client, { grant_type: 'client_credentials', scope: 'orders:read', audience: AUDIENCE }))
    if (granted?.status !== 200) return
    const token = granted.body.access_token
    const active = await request('introspect', other, '/oauth2/introspect', form(client, { token }))
    if (active !== undefined && active.body.active !== true) count(answers, 'introspect (fresh token inactive)')
    const revoked = await request('revoke', other, '/oauth2/revoke', form(client, { token }))
    if (revoked?.status !== 200) return
    const after = await request('introspect after revoke', replica, '/oauth2/introspect', form(client, { token }))
    if (after?.body.active === false) grantRevokedInactive++
    else if (after !== undefined) grantRevokedActive++
  }

  async function one (replica, other) {
    const roll = Math.random()
    let kind = 'login'
    for (let sum = 0, i = 0; i < MIX.length; i++) { sum += MIX[i][1]; if (roll < sum) { kind = MIX[i][0]; break } }
    if ((kind === 'me' || kind === 'logout') && tokens.length === 0) kind = 'login'
    if (kind === 'grant') return await grant(replica, other)
    if (kind === 'flood') return await login(replica, FLOOD_ADDRESSES[sent % FLOOD_ADDRESSES.length])
    if (kind === 'login') {
      const answer = await login(replica)
      if (answer?.status === 200) tokens.push(answer.body.data.accessToken)
      if (tokens.length > 500) tokens.shift()
      return
    }
    const token = kind === 'me' ? tokens[Math.floor(Math.random() * tokens.length)] : tokens.pop()
    if (kind === 'me') return await request('me', replica, '/api/auth/me', { headers: bearer(token) })
    const loggedOut = await request('logout', replica, '/api/auth/logout', { method: 'POST', headers: bearer(token) })
    if (loggedOut?.status !== 200) return
    // The other replica must refuse it at once.
    const after = await request('me after logout', other, '/api/auth/me', { headers: bearer(token) })
    if (after?.status === 401) revokedRefused++
    else if (after !== undefined) revokedAccepted++
  }

  const sampleMemory = () => { for (const replica of replicas) replica.memory.push(residentMiB(replica.pid)) }
  sampleMemory()
  const memoryTimer = setInterval(sampleMemory, MEMORY_SAMPLE_MS)
  const inFlight = new Set()
  const startedAt = performance.now()
  console.log(`soak: ${SECONDS} s at ${RATE} requests/s on 2 replicas sharing one Redis`)
  // Open loop: requests start on schedule whether or not earlier ones have been answered.
  while (performance.now() - startedAt < SECONDS * 1000) {
    const due = Math.floor((performance.now() - startedAt) * RATE / 1000)
    for (; sent < due; sent++) {
      const [replica, other] = sent % 2 === 0 ? replicas : [replicas[1], replicas[0]]
      const pending = one(replica, other).finally(() => inFlight.delete(pending))
      inFlight.add(pending)
    }
    await sleep(5)
  }
  await Promise.all(inFlight)
  clearInterval(memoryTimer)
  sampleMemory()
  const elapsed = (performance.now() - startedAt) / 1000

  const total = [...answers.values()].reduce((sum, n) => sum + n, 0)
  const cut = [...cuts.values()].reduce((sum, n) => sum + n, 0)
  const serverErrors = [...answers].filter(([key]) => Number(/ (\d{3})( |$)/.exec(key)?.[1]) >= 500).reduce((sum, [, n]) => sum + n, 0)
  console.log(`\n${sent} scheduled, ${total} answered, ${cut} cut, in ${elapsed.toFixed(0)} s (${(total / elapsed).toFixed(1)} answers/s)`)
  console.log('\nanswers by request and status')
  for (const [key, n] of [...answers].sort()) console.log(`  ${key.padEnd(34)} ${String(n).padStart(7)}`)
  console.log('\nrequests with no answer (connection cut)')
  if (cuts.size === 0) console.log('  none')
  for (const [key, n] of [...cuts].sort()) console.log(`  ${key.padEnd(34)} ${String(n).padStart(7)}`)
  if (cutAfterMs.length > 0) {
    cutAfterMs.sort((a, b) => a - b)
    console.log(`  cut after (ms): min ${cutAfterMs[0]}, median ${cutAfterMs[cutAfterMs.length >> 1]}, max ${cutAfterMs.at(-1)}`)
  }
  console.log(`\nlogged-out tokens: ${revokedRefused} refused by the other replica, ${revokedAccepted} accepted`)
  console.log(`revoked grants: ${grantRevokedInactive} inactive at the granting replica, ${grantRevokedActive} still active`)
  console.log(`\nresident memory (MiB) every ${MEMORY_SAMPLE_MS / 1000} s`)
  for (const [i, replica] of replicas.entries()) console.log(`  replica ${i + 1}: max ${Math.max(...replica.memory)}: ${replica.memory.join(' ')}`)
  const maxRss = Math.max(...replicas.flatMap((replica) => replica.memory))
  const verdicts = [
    ['no request cut', cut === 0],
    ['no 5xx', serverErrors === 0],
    ['every logged-out token refused', revokedAccepted === 0 && revokedRefused > 0],
    ['every revoked grant inactive at the other replica', grantRevokedActive === 0 && grantRevokedInactive > 0],
    [`resident memory under ${MAX_RSS_MIB} MiB per replica (max ${maxRss})`, maxRss < MAX_RSS_MIB]
  ]
  console.log('')
  for (const [name, ok] of verdicts) console.log(`${ok ? 'PASS' : 'FAIL'}  ${name}`)
  stopping = true
  for (const child of children) child.kill('SIGTERM')
  process.exitCode = verdicts.every(([, ok]) => ok) ? 0 : 1
} finally {
  await sleep(500)
  await rm(dir, { recursive: true, force: true })
}
