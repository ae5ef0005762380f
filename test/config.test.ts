import t from 'tap'
import { loadConfig, redisTopology } from '../src/config.js'
import { runScript, tempDir } from './helper.js'

t.test('defaults', async (t) => {
  const config = loadConfig({})
  t.match(config, {
    PORT: 3000, HOST: '0.0.0.0', DATA_DIR: './data', TOKEN_TTL_SECONDS: 900, RATE_LIMIT_MAX: 5, RATE_LIMIT_WINDOW_MS: 60000,
    JWT_ALGORITHM: 'EdDSA', ARGON2_MEMORY_KIB: 19456, ARGON2_TIME_COST: 2, ARGON2_PARALLELISM: 1, PASSWORD_MIN_LENGTH: 15, TRUST_PROXY: ''
  })
  t.equal(config.REDIS_URL, undefined)
})

t.test('a bad value names the variable', async (t) => {
  const cases: Array<[Record<string, string>, RegExp]> = [
    [{ PORT: 'abc' }, /PORT must be integer/],
    [{ PORT: '70000' }, /PORT must be <= 65535/],
    [{ JWT_ALGORITHM: 'HS256' }, /JWT_ALGORITHM must be equal to one of the allowed values/],
    [{ REDIS_URL: 'localhost:6379' }, /REDIS_URL must match pattern/],
    [{ TOKEN_TTL_SECONDS: '10' }, /TOKEN_TTL_SECONDS must be >= 60/],
    [{ ARGON2_MEMORY_KIB: '1024' }, /ARGON2_MEMORY_KIB must be >= 8192/],
    [{ LOG_LEVEL: 'loud' }, /LOG_LEVEL must be equal to one of the allowed values/]
  ]
  for (const [env, message] of cases) t.throws(() => loadConfig(env), message, JSON.stringify(env))
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

t.test('the server stops at start with that message', async (t) => {
  const result = await runScript('src/server.ts', [], { env: { PORT: 'abc', DATA_DIR: await tempDir(t) } })
  t.equal(result.code, 1)
  t.match(result.stderr, /auth-service failed to start: .*PORT must be integer/)
})
