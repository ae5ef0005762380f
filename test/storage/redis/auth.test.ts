import { writeFile } from 'node:fs/promises'
import path from 'node:path'
import t from 'tap'
import { PASSWORD, addUser, buildTestApp, runScript, tempDir } from '../../helper.ts'
import { SERVICE_PASSWORD, SERVICE_USER, redisModeOn, startTlsRedis } from '../../redis-topologies.ts'

const login = { method: 'POST' as const, url: '/api/auth/login', payload: { username: 'alice', password: PASSWORD } }
const WRONG_PASSWORD = 'rotated-out-password-9d1e'

const { topology, env } = await redisModeOn('standalone')
const port = new URL(topology.env.REDIS_URL).port

t.test('the service logs in to Redis as an ACL user with the password from REDIS_PASSWORD_FILE', async (t) => {
  const app = await buildTestApp(t, env)
  await addUser(app, 'alice', PASSWORD)
  t.equal((await app.inject(login)).statusCode, 200)
  t.equal(await app.redis?.call('ACL', 'WHOAMI'), SERVICE_USER)
})

t.test('credentials Redis refuses stop the start, naming the setting and never the password', async (t) => {
  const wrongPasswordFile = path.join(await tempDir(t), 'redis-password')
  await writeFile(wrongPasswordFile, `${WRONG_PASSWORD}\n`)
  const cases: Array<[string, Record<string, string>, RegExp]> = [
    ['a wrong REDIS_PASSWORD_FILE', { ...env, REDIS_PASSWORD_FILE: wrongPasswordFile }, /^Redis refused the credentials: check REDIS_PASSWORD_FILE \(and REDIS_USERNAME\) \(WRONGPASS/],
    ['a wrong password in REDIS_URL', { ...env, REDIS_USERNAME: '', REDIS_PASSWORD_FILE: '', REDIS_URL: `redis://${SERVICE_USER}:${WRONG_PASSWORD}@127.0.0.1:${port}` }, /^Redis refused the credentials: check the password in REDIS_URL \(WRONGPASS/],
    ['no password at all', { ...env, REDIS_USERNAME: '', REDIS_PASSWORD_FILE: '' }, /^Redis refused the credentials: check REDIS_PASSWORD_FILE: Redis requires a password \(.*NOAUTH/],
    ['an unreadable REDIS_PASSWORD_FILE', { ...env, REDIS_PASSWORD_FILE: path.join(await tempDir(t), 'missing') }, /^REDIS_PASSWORD_FILE cannot read .*missing \(ENOENT\)/]
  ]
  for (const [name, settings, message] of cases) {
    // An empty value stands for "unset" in these cases.
    const defined = Object.fromEntries(Object.entries(settings).filter(([, value]) => value !== ''))
    const error = await buildTestApp(t, defined).then(() => undefined, (error: Error) => error)
    t.match(error?.message, message, name)
    t.notMatch(error?.message ?? '', new RegExp(`${WRONG_PASSWORD}|${SERVICE_PASSWORD}`), `${name}: no password in the message`)
  }
})

t.test('sentinels that refuse the credentials stop the start, naming their setting', async (t) => {
  const sentinel = await redisModeOn('sentinel')
  const wrongPasswordFile = path.join(await tempDir(t), 'sentinel-password')
  await writeFile(wrongPasswordFile, WRONG_PASSWORD)
  await t.rejects(buildTestApp(t, { ...sentinel.env, REDIS_SENTINEL_PASSWORD_FILE: wrongPasswordFile }),
    /^Redis refused the credentials: check REDIS_SENTINEL_PASSWORD_FILE \(and REDIS_SENTINEL_USERNAME\)/)
  const app = await buildTestApp(t, sentinel.env)
  t.equal(await app.redis?.call('ACL', 'WHOAMI'), SERVICE_USER, 'with the right ones, the primary is reached as the ACL user')
})

t.test('the server process exits with the reason; so does the users CLI', async (t) => {
  const wrongPasswordFile = path.join(await tempDir(t), 'redis-password')
  await writeFile(wrongPasswordFile, WRONG_PASSWORD)
  const settings = { ...env, REDIS_PASSWORD_FILE: wrongPasswordFile, DATA_DIR: await tempDir(t), PORT: '0', METRICS_PORT: '0' }
  const [server, cli] = await Promise.all([runScript('src/server.ts', [], { env: settings }), runScript('src/cli/users.ts', ['list'], { env: settings })])
  t.equal(server.code, 1)
  t.match(server.stderr, /auth-service failed to start: Redis refused the credentials: check REDIS_PASSWORD_FILE/)
  t.equal(cli.code, 1)
  t.match(cli.stderr, /^Redis refused the credentials: check REDIS_PASSWORD_FILE/)
  for (const output of [server.stdout, server.stderr, cli.stdout, cli.stderr]) t.notOk(output.includes(WRONG_PASSWORD), 'the password appears nowhere')
})

t.test('TLS to redis-server with a test CA and a client certificate', async (t) => {
  const tls = await startTlsRedis(t)
  const app = await buildTestApp(t, { ...env, ...tls.env })
  await addUser(app, 'alice', PASSWORD)
  t.equal((await app.inject(login)).statusCode, 200)
  t.equal(await app.redis?.call('ACL', 'WHOAMI'), SERVICE_USER, 'and as the ACL user')

  const withoutTlsFiles = Object.fromEntries(Object.entries({ ...env, ...tls.env }).filter(([name]) => !name.startsWith('REDIS_TLS_')))
  const untrusting = await buildTestApp(t, withoutTlsFiles)
  t.equal((await untrusting.inject(login)).statusCode, 503, 'a server certificate from an unknown CA is refused: 503, not a login')
})
