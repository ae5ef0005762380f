import { once } from 'node:events'
import { existsSync } from 'node:fs'
import { writeFile } from 'node:fs/promises'
import net from 'node:net'
import path from 'node:path'
import t, { type Test } from 'tap'
import { adminAudience, loadConfig } from '../src/config.ts'
import { redisTopology } from '../src/storage/redis/connection.ts'
import { runScript, startService, tempDir, type CliResult } from './helper.ts'
import { freePort } from './redis-server.ts'

t.test('defaults', async (t) => {
  const config = loadConfig({})
  t.match(config, {
    PORT: 3000,
    HOST: '0.0.0.0',
    DATA_DIR: './data',
    TOKEN_TTL_SECONDS: 900,
    RATE_LIMIT_MAX: 5,
    RATE_LIMIT_WINDOW_MS: 60000,
    JWT_ALGORITHM: 'EdDSA',
    ARGON2_MEMORY_KIB: 19456,
    ARGON2_TIME_COST: 2,
    ARGON2_PARALLELISM: 1,
    PASSWORD_MIN_LENGTH: 15,
    TRUST_PROXY: ''
  })
  t.equal(config.REDIS_URL, undefined)
})

t.test('a bad value names the variable', async (t) => {
  const cases: Array<[Record<string, string>, RegExp]> = [
    [{ PORT: 'abc' }, /^Invalid PORT "abc": must be an integer from 0 to 65535$/],
    [{ PORT: '70000' }, /^Invalid PORT "70000": must be an integer from 0 to 65535$/],
    [{ JWT_ALGORITHM: 'HS256' }, /^Invalid JWT_ALGORITHM "HS256": must be one of EdDSA, ES256, RS256$/],
    [{ REDIS_URL: 'localhost:6379' }, /^Invalid REDIS_URL \(value not shown\): must be a value matching \^rediss\?:\/\/$/],
    [{ TOKEN_TTL_SECONDS: '9' }, /^Invalid TOKEN_TTL_SECONDS "9": must be an integer from 10 to 86400$/],
    [{ RATE_LIMIT_MAX: '0' }, /^Invalid RATE_LIMIT_MAX "0": must be an integer of at least 1$/],
    [{ ARGON2_MEMORY_KIB: '1024' }, /^Invalid ARGON2_MEMORY_KIB "1024": must be an integer from 8192 to 4194304$/],
    [{ LOG_LEVEL: 'verbose' }, /^Invalid LOG_LEVEL "verbose": must be one of fatal, error, warn, info, debug, trace, silent$/],
    [{ DATA_DIR: '' }, /^Invalid DATA_DIR "": must be a string that is not empty$/],
    [{ TRUST_PROXY: '10.0.0.1, everyone' }, /^Invalid TRUST_PROXY "everyone": must be comma-separated IP addresses or CIDR ranges/],
    [{ TRUST_PROXY: '10.0.0.0/33' }, /^Invalid TRUST_PROXY "10.0.0.0\/33"/],
    [{ PORT: 'abc', LOG_LEVEL: 'loud' }, /^Invalid PORT "abc": .*\nInvalid LOG_LEVEL "loud": .*$/]
  ]
  for (const [env, message] of cases) t.throws(() => loadConfig(env), message, JSON.stringify(env))
  t.match(loadConfig({ TRUST_PROXY: '10.0.0.0/8, 192.168.1.10,::1,fd00::/8' }), { TRUST_PROXY: '10.0.0.0/8, 192.168.1.10,::1,fd00::/8' }, 'addresses and CIDRs of both families')
})

t.test('managed keys need an interval of at least 15 s and of the token lifetime, and a key-encryption key', async (t) => {
  const kek = { JWT_KEY_ENCRYPTION_KEY_FILE: '/run/secrets/kek' }
  t.throws(() => loadConfig({ JWT_KEY_ROTATION_SECONDS: '10', TOKEN_TTL_SECONDS: '10', ...kek }), /^Invalid JWT_KEY_ROTATION_SECONDS "10": must be 0 \(key files\) or at least 15$/)
  t.throws(() => loadConfig({ JWT_KEY_ROTATION_SECONDS: '600', ...kek }), /^env\/JWT_KEY_ROTATION_SECONDS \(600\) is shorter than env\/TOKEN_TTL_SECONDS \(900\)/)
  t.throws(() => loadConfig({ JWT_KEY_ROTATION_SECONDS: '900' }), /^env\/JWT_KEY_ENCRYPTION_KEY_FILE is required with env\/JWT_KEY_ROTATION_SECONDS/)
  t.throws(() => loadConfig(kek), /^env\/JWT_KEY_ENCRYPTION_KEY_FILE is set without env\/JWT_KEY_ROTATION_SECONDS/)
  t.throws(() => loadConfig({ JWT_KEY_ROTATION_SECONDS: '900', ...kek, JWT_VERIFY_KEY_FILES: 'old.pem' }), /^env\/JWT_VERIFY_KEY_FILES does not apply with env\/JWT_KEY_ROTATION_SECONDS/)
  t.match(loadConfig({ JWT_KEY_ROTATION_SECONDS: '900', ...kek }), { JWT_KEY_ROTATION_SECONDS: 900, TOKEN_TTL_SECONDS: 900 })
  t.equal(loadConfig({}).JWT_KEY_ROTATION_SECONDS, 0, 'key files unless set')
})

t.test('a secret setting is never repeated in its error', async (t) => {
  const error = t.throws(() => loadConfig({ REDIS_URL: 'http://:s3cret-password@redis.internal:6379' })) as Error
  t.match(error.message, /^Invalid REDIS_URL \(value not shown\)/)
  t.notMatch(error.message, /s3cret/)
})

/** Starts the compiled server and waits for it to exit (killing it after 30 s, which fails the test). */
async function failedStart (env: Record<string, string>): Promise<CliResult & { ms: number }> {
  const started = Date.now()
  const result = await runScript('src/server.ts', [], { env: { LOG_LEVEL: 'warn', ...env }, timeoutMs: 30_000 })
  return { ...result, ms: Date.now() - started }
}

/**
 * Each start-up error is one line naming the setting, its value and what is allowed, and the
 * process exits 1 at once (docs/configuration.md): under a second on an idle machine, asserted
 * here with a margin for a loaded 2-core one.
 */
function assertOneLine (t: Test, result: CliResult & { ms: number }, message: RegExp): void {
  t.equal(result.code, 1, 'exit code 1')
  const lines = result.stderr.trim().split('\n')
  t.equal(lines.length, 1, `one line: ${result.stderr}`)
  t.match(lines[0], new RegExp(`^auth-service failed to start: ${message.source}`))
  t.ok(result.ms < 15_000, `exited in ${result.ms} ms`)
}

t.test('the server stops at start with one line naming the setting', async (t) => {
  const dataDir = await tempDir(t)
  const file = path.join(dataDir, 'a-file')
  await writeFile(file, '')
  const cases: Array<[Record<string, string>, RegExp]> = [
    [{ PORT: 'abc' }, /Invalid PORT "abc": must be an integer from 0 to 65535$/],
    [{ JWT_ALGORITHM: 'HS256' }, /Invalid JWT_ALGORITHM "HS256": must be one of EdDSA, ES256, RS256$/],
    [{ LOG_LEVEL: 'verbose' }, /Invalid LOG_LEVEL "verbose": must be one of fatal, error, warn, info, debug, trace, silent$/],
    [{ TRUST_PROXY: 'everyone' }, /Invalid TRUST_PROXY "everyone": must be comma-separated IP addresses or CIDR ranges/],
    [{ DATA_DIR: file }, /DATA_DIR=.*a-file is a file, not a directory: set DATA_DIR to a directory/],
    [{ DATA_DIR: path.join(file, 'below') }, /DATA_DIR=.*a-file\/below cannot be created: .*a-file is a file/],
    [{ HOST: 'not-a-host' }, /HOST=not-a-host does not resolve to an address \((ENOTFOUND|EAI_AGAIN)\): set HOST to an address of this machine, 0\.0\.0\.0 .* or ::/],
    [{ HOST: '192.0.2.1' }, /HOST=192\.0\.2\.1 is not an address of this machine/]
  ]
  if (existsSync('/proc/self')) cases.push([{ DATA_DIR: '/proc/nope' }, /DATA_DIR=\/proc\/nope cannot be created \(ENOENT on \/proc\/nope\)/])
  for (const [env, message] of cases) {
    await t.test(JSON.stringify(env), async (t) => {
      assertOneLine(t, await failedStart({ DATA_DIR: await tempDir(t), PORT: String(await freePort()), METRICS_PORT: '0', ...env }), message)
    })
  }
})

t.test('a port in use names PORT or METRICS_PORT and how to change it', async (t) => {
  const taken = net.createServer()
  taken.listen(0, '127.0.0.1')
  await once(taken, 'listening')
  t.teardown(() => taken.close())
  const { port } = taken.address() as net.AddressInfo
  const env = { DATA_DIR: await tempDir(t), HOST: '127.0.0.1' }
  assertOneLine(t, await failedStart({ ...env, PORT: String(port), METRICS_PORT: '0' }),
    new RegExp(`PORT=${port} is already in use on 127\\.0\\.0\\.1 \\(by another process, or another instance of this service on this host\\): set PORT to a free port$`))
  assertOneLine(t, await failedStart({ ...env, PORT: String(await freePort()), METRICS_PORT: String(port) }),
    new RegExp(`METRICS_PORT=${port} is already in use on 127\\.0\\.0\\.1 .*: set METRICS_PORT to a free port, or METRICS_PORT=0 to turn the metrics listener off$`))
  assertOneLine(t, await failedStart({ ...env, PORT: String(await freePort()), METRICS_PORT: '0', ADMIN_PORT: String(port) }),
    new RegExp(`ADMIN_PORT=${port} is already in use on 127\\.0\\.0\\.1 .*: set ADMIN_PORT to a free port, or unset ADMIN_PORT to turn the admin listener off$`))
  assertOneLine(t, await failedStart({ ...env, PORT: String(await freePort()), METRICS_PORT: '0', ADMIN_PORT: String(await freePort()), ADMIN_HOST: '192.0.2.1' }),
    /ADMIN_HOST=192\.0\.2\.1 is not an address of this machine: set ADMIN_HOST to one of its addresses/)
})

t.test('ADMIN_AUDIENCE: JWT_ISSUER\'s /admin unless set, never JWT_AUDIENCE', async (t) => {
  t.equal(adminAudience(loadConfig({ JWT_ISSUER: 'https://auth.example.com' })), 'https://auth.example.com/admin')
  t.equal(adminAudience(loadConfig({ JWT_ISSUER: 'https://auth.example.com/' })), 'https://auth.example.com/admin')
  t.equal(adminAudience(loadConfig({ ADMIN_AUDIENCE: 'https://admin.internal' })), 'https://admin.internal')
  t.throws(() => loadConfig({ ADMIN_AUDIENCE: 'internal-services' }), /ADMIN_AUDIENCE must differ from env\/JWT_AUDIENCE/)
  t.throws(() => loadConfig({ ADMIN_AUDIENCE: 'with space' }), /ADMIN_AUDIENCE/)
  t.equal(loadConfig({}).ADMIN_PORT, undefined, 'the admin listener is off unless ADMIN_PORT is set')
})

t.test('a second embedded instance on one DATA_DIR refuses to start; a killed one leaves no lock behind', async (t) => {
  const dataDir = await tempDir(t)
  const env = { DATA_DIR: dataDir, HOST: '127.0.0.1', METRICS_PORT: '0', LOG_LEVEL: 'warn' }
  const first = await startService(t, { ...env, PORT: String(await freePort()) })
  const second = await failedStart({ ...env, PORT: String(await freePort()) })
  assertOneLine(t, second, new RegExp(`DATA_DIR=${dataDir} is in use by another embedded instance \\(pid ${first.pid}\\): .*another DATA_DIR.*REDIS_URL to run several replicas`))

  first.kill('SIGKILL')
  await once(first, 'exit')
  const third = await startService(t, { ...env, PORT: String(await freePort()) })
  t.ok(third.pid !== undefined && third.exitCode === null, 'starts once the holder is gone, although its socket file is left')
  t.equal(third.kill('SIGTERM') && (await once(third, 'exit'))[0], 0, 'a clean shutdown')
})

t.test('JWT_ISSUER is the absolute URL clients discover the service by: https, or http on loopback only', async (t) => {
  t.equal(loadConfig({}).JWT_ISSUER, 'http://localhost:3000')
  for (const issuer of ['https://auth.example.com', 'https://auth.example.com:8443', 'http://127.0.0.1:3000', 'http://[::1]:3000', 'https://auth.example.com/']) {
    t.equal(loadConfig({ JWT_ISSUER: issuer }).JWT_ISSUER, issuer, issuer)
  }
  const cases: Array<[string, RegExp]> = [
    ['auth-service', /JWT_ISSUER must be an absolute URL/],
    ['http://auth.example.com', /JWT_ISSUER must be an https URL \(http only for localhost/],
    ['http://10.0.0.1:3000', /JWT_ISSUER must be an https URL/],
    ['https://auth.example.com/tenant', /JWT_ISSUER must be an origin only/],
    ['https://auth.example.com/?x=1', /JWT_ISSUER must be an origin only/],
    ['https://user:pw@auth.example.com', /JWT_ISSUER must be an origin only/]
  ]
  for (const [issuer, message] of cases) t.throws(() => loadConfig({ JWT_ISSUER: issuer }), message, issuer)
})

t.test('exactly one Redis topology; its settings agree, and errors never echo REDIS_URL', async (t) => {
  t.equal(redisTopology(loadConfig({})), undefined, 'embedded mode')
  t.equal(redisTopology(loadConfig({ REDIS_URL: 'rediss://redis:6380' })), 'standalone')
  t.equal(redisTopology(loadConfig({ REDIS_SENTINELS: 'a:26379, b:26379,[::1]:26379', REDIS_SENTINEL_MASTER: 'auth' })), 'sentinel')
  t.equal(redisTopology(loadConfig({ REDIS_CLUSTER_NODES: '10.0.0.1:6379,10.0.0.2:6379', REDIS_TLS_CA_FILE: 'ca.pem' })), 'cluster')
  const secretUrl = 'redis://svc:hunter2-secret@redis:6379'
  const cases: Array<[Record<string, string>, RegExp]> = [
    [{ REDIS_URL: secretUrl, REDIS_SENTINELS: 'a:26379', REDIS_SENTINEL_MASTER: 'auth' }, /env\/REDIS_URL and env\/REDIS_SENTINELS are set: choose one Redis topology/],
    [{ REDIS_SENTINELS: 'a:26379', REDIS_CLUSTER_NODES: 'b:6379' }, /env\/REDIS_SENTINELS and env\/REDIS_CLUSTER_NODES are set/],
    [{ REDIS_SENTINELS: 'a:26379' }, /env\/REDIS_SENTINEL_MASTER is required with env\/REDIS_SENTINELS/],
    [{ REDIS_SENTINELS: 'a' }, /env\/REDIS_SENTINELS must be a comma-separated list of host:port \(got "a"\)/],
    [{ REDIS_CLUSTER_NODES: 'a:6379,redis://b:6379' }, /env\/REDIS_CLUSTER_NODES must be a comma-separated list of host:port/],
    [{ REDIS_URL: secretUrl, REDIS_SENTINEL_MASTER: 'auth' }, /env\/REDIS_SENTINEL_MASTER is set without env\/REDIS_SENTINELS/],
    [{ REDIS_PASSWORD_FILE: '/run/secrets/redis' }, /env\/REDIS_PASSWORD_FILE is set without a Redis topology/],
    [{ REDIS_URL: secretUrl, REDIS_PASSWORD_FILE: '/run/secrets/redis' }, /env\/REDIS_URL holds a password and env\/REDIS_PASSWORD_FILE is set/],
    [{ REDIS_URL: secretUrl, REDIS_USERNAME: 'svc' }, /env\/REDIS_URL holds a username and env\/REDIS_USERNAME is set/],
    [{ REDIS_URL: secretUrl, REDIS_TLS_CA_FILE: 'ca.pem' }, /env\/REDIS_TLS_CA_FILE and env\/REDIS_TLS_CERT_FILE need a rediss:\/\/ env\/REDIS_URL/],
    [{ REDIS_URL: 'rediss://redis:6380', REDIS_TLS_CERT_FILE: 'client.pem' }, /env\/REDIS_TLS_CERT_FILE and env\/REDIS_TLS_KEY_FILE must be set together/],
    [{ REDIS_CLUSTER_NODES: 'a:6379', REDIS_TLS_CERT_FILE: 'c.pem', REDIS_TLS_KEY_FILE: 'k.pem' }, /env\/REDIS_TLS_CERT_FILE needs env\/REDIS_TLS_CA_FILE/],
    [{ REDIS_URL: 'redis://svc:hunter2-secret@[bad' }, /env\/REDIS_URL is not a valid URL/]
  ]
  for (const [env, message] of cases) {
    const error = (() => { try { loadConfig(env); return undefined } catch (error) { return error as Error } })()
    t.match(error?.message, message, Object.keys(env).join(' + '))
    t.notMatch(error?.message ?? '', /hunter2/, 'the password in REDIS_URL is never echoed')
  }
})
