import { PassThrough } from 'node:stream'
import type { FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import { runUsersCli } from '../../../src/cli/users.ts'
import { PASSWORD, addUser, buildTestApp, redisMode, untilClock } from '../../helper.ts'

const CHEAP_ARGON2 = { ARGON2_MEMORY_KIB: '8192', ARGON2_TIME_COST: '1', RATE_LIMIT_MAX: '100' }
const NEW_PASSWORD = 'violet-harbour-quietly-83-lanterns'

/** Waits until the clock has reached the next whole second, the unit of a token's iat: a token issued then is told from those issued before. */
const nextSecond = async () => { await untilClock((Math.floor(Date.now() / 1000) + 1) * 1000) }

/** The users command as an operator runs it, against the service's own settings, the password piped in. */
async function users (app: FastifyInstance, ...argv: string[]): Promise<string> {
  const stdin = new PassThrough()
  stdin.end(`${NEW_PASSWORD}\n`)
  let output = ''
  const sink = new PassThrough()
  sink.on('data', (chunk: Buffer) => { output += chunk.toString() })
  const code = await runUsersCli(argv, { stdin, stdout: sink, stderr: sink, config: app.config })
  if (code !== 0) throw new Error(`users ${argv.join(' ')} exited ${code}: ${output}`)
  return output
}

async function login (app: FastifyInstance, password = PASSWORD): Promise<{ statusCode: number, token?: string }> {
  const response = await app.inject({ method: 'POST', url: '/api/auth/login', payload: { username: 'alice', password } })
  return { statusCode: response.statusCode, token: response.statusCode === 200 ? response.json().data.accessToken : undefined }
}

const withToken = (app: FastifyInstance, method: 'GET' | 'POST', url: string, token: string) =>
  app.inject({ method, url, headers: { authorization: `Bearer ${token}` } })
const me = async (app: FastifyInstance, token: string) => (await withToken(app, 'GET', '/api/auth/me', token)).statusCode
const logout = async (app: FastifyInstance, token: string) => (await withToken(app, 'POST', '/api/auth/logout', token)).statusCode

/** Embedded: the CLI writes users.json under the running service; Redis: two replicas on one Redis. */
const modes: Record<string, (t: Test) => Promise<[FastifyInstance, FastifyInstance]>> = {
  embedded: async (t) => {
    const app = await buildTestApp(t, CHEAP_ARGON2)
    return [app, app]
  },
  redis: async (t) => {
    const env = { ...CHEAP_ARGON2, ...(await redisMode(t)).env }
    return [await buildTestApp(t, env), await buildTestApp(t, env)]
  }
}

for (const [mode, replicas] of Object.entries(modes)) {
  t.test(`${mode}: passwd, disable and remove end every earlier token on every replica at once`, async (t) => {
    const [a, b] = await replicas(t)
    await addUser(a, 'alice', PASSWORD)
    const before = (await login(a)).token!
    t.equal(await me(b, before), 200, 'control: the token works on the other replica')

    t.match(await users(a, 'passwd', 'alice'), /Changed the password/)
    t.equal(await me(b, before), 401, '/me refuses a token from before the password change')
    t.equal(await me(a, before), 401)
    t.equal(await logout(b, before), 401, 'and so does logout')
    t.equal((await login(a)).statusCode, 401, 'the old password is gone')
    // Tokens carry whole seconds: one from the very second of the change is refused too.
    await nextSecond()
    const afterPasswd = (await login(b, NEW_PASSWORD)).token!
    t.equal(await me(a, afterPasswd), 200, 'a token issued after the change works')

    t.match(await users(a, 'disable', 'alice'), /Disabled user "alice"/)
    t.equal(await me(b, afterPasswd), 401, 'disabling ends it')
    const disabledLogin = await a.inject({ method: 'POST', url: '/api/auth/login', payload: { username: 'alice', password: NEW_PASSWORD } })
    t.equal(disabledLogin.statusCode, 401, 'a disabled account cannot log in')
    t.same(disabledLogin.json(), { message: 'Username or password is incorrect' }, 'and is told nothing more than a wrong password is')

    t.match(await users(a, 'enable', 'alice'), /Enabled user "alice"/)
    t.equal(await me(b, afterPasswd), 401, 'enabling does not bring back the tokens disabling ended')
    await nextSecond()
    const afterEnable = (await login(b, NEW_PASSWORD)).token!
    t.equal(await me(a, afterEnable), 200)

    t.match(await users(b, 'remove', 'alice'), /Removed user "alice"/)
    t.equal(await me(a, afterEnable), 401, 'removing the account ends its tokens')
    t.equal(await logout(b, afterEnable), 401)
    await nextSecond()
    await addUser(a, 'alice', PASSWORD)
    t.equal(await me(a, afterEnable), 401, 'a new account of the same name, a second later, does not inherit them')
  })
}
