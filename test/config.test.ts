import t from 'tap'
import { loadConfig } from '../src/config.js'
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

t.test('the server stops at start with that message', async (t) => {
  const result = await runScript('src/server.ts', [], { env: { PORT: 'abc', DATA_DIR: await tempDir(t) } })
  t.equal(result.code, 1)
  t.match(result.stderr, /auth-service failed to start: .*PORT must be integer/)
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
