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
