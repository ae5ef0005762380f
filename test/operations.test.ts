import { execFile } from 'node:child_process'
import { once } from 'node:events'
import { chmod, writeFile } from 'node:fs/promises'
import { connect } from 'node:net'
import { Agent, request as httpRequest, type IncomingMessage } from 'node:http'
import { request as httpsRequest } from 'node:https'
import { Writable } from 'node:stream'
import { json } from 'node:stream/consumers'
import path from 'node:path'
import { promisify } from 'node:util'
import t from 'tap'
import { buildApp, REDACTED_LOG_PATHS } from '../src/app.ts'
import { startMetricsServer } from '../src/observability/metrics-server.ts'
import { PASSWORD, addUser, buildTestApp, runScript, startService, tempDir, testConfig } from './helper.ts'
import { freePort } from './redis-server.ts'
import { SERVICE_USER, redisModeOn } from './redis-topologies.ts'

const login = (username: string, password: string, remoteAddress = '10.0.0.1') => ({
  method: 'POST' as const, url: '/api/auth/login', remoteAddress, payload: { username, password }
})

t.test('metrics: login attempts by outcome, latency, argon2, on a separate listener', async (t) => {
  const app = await buildTestApp(t, { RATE_LIMIT_MAX: '4' })
  await addUser(app, 'alice', PASSWORD)
  await app.inject(login('alice', PASSWORD))
  await app.inject(login('alice', 'wrong password'))
  await app.inject({ ...login('alice', PASSWORD), payload: { username: 'alice' } })
  await app.inject(login('nobody', 'x'))
  await app.inject(login('alice', PASSWORD))

  const metricsServer = await startMetricsServer(app.metrics.registry, '127.0.0.1', 0)
  t.teardown(() => metricsServer.close())
  const { port } = metricsServer.address() as { port: number }
  const response = await fetch(`http://127.0.0.1:${port}/metrics`)
  t.equal(response.status, 200)
  const text = await response.text()
  t.match(text, /auth_login_attempts_total\{outcome="success"\} 1\n/)
  t.match(text, /auth_login_attempts_total\{outcome="bad_credentials"\} 2\n/)
  t.match(text, /auth_login_attempts_total\{outcome="invalid"\} 1\n/)
  t.match(text, /auth_login_attempts_total\{outcome="rate_limited"\} 1\n/)
  t.match(text, /auth_argon2_duration_seconds_count\{operation="verify"\} 3\n/)
  t.match(text, /auth_http_request_duration_seconds_count\{method="POST",route="\/api\/auth\/login",status_code="200"\} 1\n/)
  t.match(text, /process_cpu_seconds_total/)
  t.equal((await app.inject({ method: 'GET', url: '/metrics' })).statusCode, 404, 'not on the public port')
})

t.test('logs: one audit line per attempt with a request id, and no secret anywhere', async (t) => {
  const lines: string[] = []
  const stream = new Writable({ write (chunk, _encoding, done) { lines.push(...chunk.toString().trim().split('\n')); done() } })
  const config = await testConfig(t, { LOG_LEVEL: 'trace' })
  const app = await buildApp(config, { level: 'trace', redact: REDACTED_LOG_PATHS, stream })
  t.teardown(() => app.close())
  await addUser(app, 'alice', PASSWORD)

  const success = await app.inject({ ...login('alice', PASSWORD), headers: { 'x-request-id': 'trace-123' } })
  const token = success.json().data.accessToken as string
  t.match(success.headers['x-request-id'], /^[0-9a-f-]{36}$/, 'the request id is the service\'s own')
  await app.inject(login('alice', 'a wrong secret password'))
  await app.inject({ method: 'GET', url: '/api/auth/me', headers: { authorization: `Bearer ${token}` } })
  await app.inject({ method: 'POST', url: '/api/auth/logout', headers: { authorization: `Bearer ${token}` } })
  await app.inject({ method: 'GET', url: '/api/auth/me', headers: { authorization: `Bearer ${token}` } })

  const entries = lines.map((line) => JSON.parse(line))
  const audits = entries.filter((entry) => entry.audit === 'login')
  t.same(audits.map((entry) => [entry.outcome, entry.username, entry.clientIp]), [['success', 'alice', '10.0.0.1'], ['bad_credentials', 'alice', '10.0.0.1']])
  t.equal(audits[0].reqId, success.headers['x-request-id'])
  t.equal(audits[0].clientRequestId, 'trace-123', 'the client\'s id is logged beside it')
  const all = lines.join('\n')
  for (const secret of [PASSWORD, 'a wrong secret password', token, token.split('.')[2], app.accessTokens.keyRing.signingKey.privateKeyPem.split('\n')[1]]) {
    t.notOk(all.includes(secret), `never logged: ${secret.slice(0, 12)}...`)
  }
  t.equal(entries.filter((entry) => entry.req?.url === '/api/auth/login').length, 0, 'a login attempt is logged once: by its audit line')
  t.ok(entries.some((entry) => entry.req?.url === '/api/auth/me' && entry.reqId !== undefined), 'other requests are logged, with their request id')
})

t.test('logs: Redis credentials never appear, however the connection fails', async (t) => {
  const { topology, env } = await redisModeOn('standalone')
  const wrongPassword = 'a-rotated-out-redis-password'
  const wrongPasswordFile = path.join(await tempDir(t), 'redis-password')
  await writeFile(wrongPasswordFile, wrongPassword)
  const { port } = new URL(topology.env.REDIS_URL)
  const withoutCredentials = Object.fromEntries(Object.entries(env).filter(([name]) => name !== 'REDIS_USERNAME' && name !== 'REDIS_PASSWORD_FILE'))
  for (const [name, settings] of [
    ['a wrong password in REDIS_URL', { ...withoutCredentials, REDIS_URL: `redis://${SERVICE_USER}:${wrongPassword}@127.0.0.1:${port}` }],
    ['a wrong REDIS_PASSWORD_FILE', { ...env, REDIS_PASSWORD_FILE: wrongPasswordFile }]
  ] as const) {
    const lines: string[] = []
    const stream = new Writable({ write (chunk, _encoding, done) { lines.push(chunk.toString()); done() } })
    const error = await buildApp(await testConfig(t, { ...settings, LOG_LEVEL: 'trace' }), { level: 'trace', redact: REDACTED_LOG_PATHS, stream })
      .then(async (app) => { await app.close() }, (error: Error) => error)
    t.match(error, { message: /^Redis refused the credentials/ }, `${name}: the start fails`)
    t.match(lines.join(''), /WRONGPASS/, `${name}: the refusal is logged`)
    t.notOk(lines.join('').includes(wrongPassword), `${name}: the password is not`)
    t.notOk(String(error).includes(wrongPassword), `${name}: nor in the error`)
  }
})

t.test('security headers on every response; tokens are never cached', async (t) => {
  const app = await buildTestApp(t)
  await addUser(app, 'alice', PASSWORD)
  for (const response of [await app.inject(login('alice', PASSWORD)), await app.inject(login('alice', 'nope')), await app.inject({ method: 'GET', url: '/health/live' })]) {
    t.match(response.headers, {
      'x-content-type-options': 'nosniff',
      'x-frame-options': 'DENY',
      'referrer-policy': 'no-referrer',
      'cache-control': 'no-store',
      'content-security-policy': "default-src 'none'; frame-ancestors 'none'"
    })
    t.notOk(response.headers['strict-transport-security'], 'no HSTS over plain HTTP')
  }
  t.equal((await app.inject({ method: 'GET', url: '/.well-known/jwks.json' })).headers['cache-control'], 'public, max-age=300')
  t.equal((await app.inject({ method: 'GET', url: '/docs/' })).statusCode, 200, 'the docs UI is served')
})

t.test('the docs UI and its static files carry the security headers, with a CSP that covers what the page loads', async (t) => {
  const app = await buildTestApp(t)
  const page = await app.inject({ method: 'GET', url: '/docs/' })
  t.equal(page.statusCode, 200)
  const csp = String(page.headers['content-security-policy'])
  const directives = new Map(csp.split(';').map((directive) => directive.trim().split(/\s+/)).map(([name, ...values]) => [name, values]))
  t.same(directives.get('script-src'), ["'self'"], 'scripts from the service only, none inline')
  t.same(directives.get('default-src'), ["'none'"])
  t.same(directives.get('frame-ancestors'), ["'none'"])

  // Everything the page loads is a same-origin URL under /docs, allowed by its directive, and served
  // with the same headers; the page has no inline script that the CSP would block.
  const html = page.body
  t.notMatch(html, /<script(?![^>]*\ssrc=)[^>]*>/, 'no inline <script>')
  t.notMatch(html, /\son[a-z]+=/i, 'no inline event handlers')
  const loaded = [...html.matchAll(/<(script|link)\b[^>]*\s(?:src|href)="([^"]+)"/g)].map(([, tag, url]) => ({ tag, url }))
  t.ok(loaded.length >= 4, `the page loads ${loaded.map((resource) => resource.url).join(', ')}`)
  const initializer = loaded.find((resource) => resource.url.endsWith('swagger-initializer.js'))
  t.ok(initializer, 'the initializer script is loaded from a file')
  for (const { url } of [...loaded, { url: './json' }]) {
    const resolved = new URL(url, 'http://service.test/docs/')
    t.equal(resolved.origin, 'http://service.test', `${url} is same-origin ('self')`)
    const response = await app.inject({ method: 'GET', url: resolved.pathname })
    t.equal(response.statusCode, 200, `${resolved.pathname} is served`)
    t.match(response.headers, {
      'content-security-policy': csp, 'x-content-type-options': 'nosniff', 'x-frame-options': 'DENY', 'referrer-policy': 'no-referrer'
    }, `${resolved.pathname} carries the headers`)
  }
  const script = (await app.inject({ method: 'GET', url: new URL(initializer?.url ?? '', 'http://service.test/docs/').pathname })).body
  t.match(script, /validatorUrl: null/, 'no third-party validator badge, which the CSP would block')
  t.match(script, /url: resolveUrl\('\.\/json'\)/, 'the OpenAPI document comes from /docs/json (connect-src self)')
})

t.test('in-process TLS with HSTS', async (t) => {
  const dir = await tempDir(t)
  const [cert, key] = [path.join(dir, 'cert.pem'), path.join(dir, 'key.pem')]
  await promisify(execFile)('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1', '-subj', '/CN=localhost', '-keyout', key, '-out', cert])
  const app = await buildTestApp(t, { TLS_CERT_FILE: cert, TLS_KEY_FILE: key })
  await addUser(app, 'alice', PASSWORD)
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as { port: number }

  const response = await new Promise<{ status?: number, headers: Record<string, unknown>, body: string }>((resolve, reject) => {
    const request = httpsRequest({ host: '127.0.0.1', port, path: '/api/auth/login', method: 'POST', rejectUnauthorized: false, headers: { 'content-type': 'application/json' } }, (res) => {
      let body = ''
      res.on('data', (chunk: Buffer) => { body += chunk.toString() })
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }))
    })
    request.on('error', reject)
    request.end(JSON.stringify({ username: 'alice', password: PASSWORD }))
  })
  t.equal(response.status, 200)
  t.equal(JSON.parse(response.body).data.username, 'alice')
  t.equal(response.headers['strict-transport-security'], 'max-age=31536000; includeSubDomains')
  await t.rejects(testConfig(t, { TLS_CERT_FILE: cert }), /TLS_CERT_FILE and env\/TLS_KEY_FILE must be set together/)
  await t.rejects(buildTestApp(t, { TLS_CERT_FILE: path.join(dir, 'missing.pem'), TLS_KEY_FILE: key }), /TLS_CERT_FILE cannot read .*missing\.pem \(ENOENT\)/)
  await chmod(key, 0o644)
  await t.rejects(buildTestApp(t, { TLS_CERT_FILE: cert, TLS_KEY_FILE: key }), /^TLS_KEY_FILE: .*key\.pem holds a private key that group or others can access \(mode 0644\); .*chmod 600 /)
})

t.test('SIGTERM during in-flight logins: all finish, readiness turns false, the process exits', async (t) => {
  const dataDir = await tempDir(t)
  const env = { DATA_DIR: dataDir, LOG_LEVEL: 'info' }
  const added = await runScript('src/cli/users.ts', ['add', 'alice'], { env, input: `${PASSWORD}\n` })
  t.equal(added.code, 0, added.stderr)

  const port = await freePort()
  // Slow hashing (more argon2 passes): the logins are still hashing when shutdown has begun. The
  // five take up to 10 s on a loaded 2-core machine: a grace period well past that.
  const graceMs = 60_000
  const server = await startService(t, { ...env, PORT: String(port), HOST: '127.0.0.1', METRICS_PORT: '0', ARGON2_TIME_COST: '8', RATE_LIMIT_MAX: '100', SHUTDOWN_TIMEOUT_MS: String(graceMs) })
  const base = `http://127.0.0.1:${port}`
  t.equal((await fetch(`${base}/health/ready`)).status, 200)

  // Each login sends its body once the server has answered its headers with 100 Continue: from
  // then on the server holds the request, so the SIGTERM below finds every one in flight.
  const body = JSON.stringify({ username: 'alice', password: PASSWORD })
  const agent = new Agent({ keepAlive: true })
  t.teardown(() => agent.destroy())
  const logins = Array.from({ length: 4 }, () => {
    const request = httpRequest({ host: '127.0.0.1', port, method: 'POST', path: '/api/auth/login', agent, headers: { 'content-type': 'application/json', 'content-length': body.length, expect: '100-continue' } })
    const taken = once(request, 'continue').then(() => { request.end(body) })
    const answered = once(request, 'response').then(async ([response]: IncomingMessage[]) => ({ status: response.statusCode, body: await json(response) as { data: { accessToken: unknown } } }))
    return { taken, answered }
  })
  // One more login on a raw connection; once shutdown has begun, a readiness check is pipelined
  // behind it on that connection, which the server keeps open while the login is in flight.
  const socket = connect(port, '127.0.0.1')
  socket.write(`POST /api/auth/login HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nExpect: 100-continue\r\n\r\n`)
  let pipelined = ''
  const socketTaken = new Promise<void>((resolve) => {
    socket.on('data', (chunk: Buffer) => {
      pipelined += chunk.toString()
      if (pipelined.startsWith('HTTP/1.1 100 Continue\r\n\r\n')) resolve()
    })
  }).then(() => { socket.write(body) })
  const socketClosed = once(socket, 'close')
  await Promise.all([...logins.map((login) => login.taken), socketTaken])
  const exited = once(server, 'exit')
  const shutdownBegun = new Promise<void>((resolve) => { server.stdout?.on('data', () => { if (server.output().includes('"msg":"shutting down"')) resolve() }) })
  const signalledAt = Date.now()
  server.kill('SIGTERM')
  await shutdownBegun
  socket.write('GET /health/ready HTTP/1.1\r\nHost: localhost\r\n\r\n')

  const results = await Promise.all(logins.map((login) => login.answered))
  t.same(results.map((result) => result.status), [200, 200, 200, 200], 'every in-flight login finished')
  await socketClosed
  t.same(pipelined.match(/HTTP\/1\.1 \d{3} [A-Za-z ]+/g), ['HTTP/1.1 100 Continue', 'HTTP/1.1 200 OK', 'HTTP/1.1 503 Service Unavailable'], 'the login finished; readiness said no')
  t.match(pipelined, /\{"message":"Shutting down"\}/)
  t.ok(results.every((result) => typeof result.body.data.accessToken === 'string'))
  const [code] = await exited as [number | null]
  t.equal(code, 0, 'exit code 0')
  if (code !== 0) t.comment(server.output())
  t.ok(Date.now() - signalledAt < graceMs, 'exited within the grace period')
  t.match(server.output(), /shutting down/)
  t.equal(await fetch(`${base}/health/ready`).then((r) => r.status, () => 'refused'), 'refused', 'no longer accepting')
})

t.test('logs: unknown usernames only as keyed hashes; no control or bidirectional character reaches a line', async (t) => {
  const lines: string[] = []
  const stream = new Writable({ write (chunk, _encoding, done) { lines.push(...chunk.toString().trim().split('\n')); done() } })
  const app = await buildApp(await testConfig(t), { level: 'info', redact: REDACTED_LOG_PATHS, stream })
  t.teardown(() => app.close())
  await addUser(app, 'alice', PASSWORD)

  const typedIntoUsername = 'my-Secret-passphrase-9'
  const forged = 'id\n{"audit":"login","outcome":"success"}\u202E\u2066\u0085\u2028'
  await app.inject({ ...login(typedIntoUsername, 'x'), headers: { 'x-request-id': forged } })
  await app.inject({ ...login(typedIntoUsername.toUpperCase(), 'x') })
  await app.inject({ ...login('alice', 'a wrong one') })

  const audits = lines.map((line) => JSON.parse(line)).filter((entry) => entry.audit === 'login')
  t.equal(audits.length, 3)
  t.equal(audits[0].username, undefined, 'an unknown username is not logged')
  t.match(audits[0].usernameHash, /^[A-Za-z0-9_-]{22}$/, 'but a keyed hash of it is')
  t.equal(audits[1].usernameHash, audits[0].usernameHash, 'the same name (in any case) hashes alike')
  t.equal(audits[2].username, 'alice', 'an existing account is named')
  t.notOk(lines.join('\n').includes(typedIntoUsername), 'a password typed as the username never reaches the log')
  const all = lines.join('')
  for (const character of ['\u202E', '\u2066', '\u0085', '\u2028']) t.notOk(all.includes(character), `no U+${character.codePointAt(0)!.toString(16).toUpperCase()} in any line`)
  t.equal(audits[0].clientRequestId, 'id\uFFFD{"audit":"login","outcome":"success"}\uFFFD\uFFFD\uFFFD\uFFFD', 'the client\'s id is kept, its unprintable characters replaced')
})
