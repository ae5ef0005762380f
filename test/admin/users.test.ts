import t, { type Test } from 'tap'
import { PASSWORD } from '../helper.ts'
import { behaviourTopologies, redisModeOn } from '../redis-topologies.ts'
import { adminService, adminToken, call, type AdminService } from './helper.ts'

/** The tests log in more often than the per-IP limit lets one address. */
const LOGINS = { RATE_LIMIT_MAX: '1000' }

const MODES: Record<string, (t: Test) => Promise<AdminService>> = {
  embedded: async (t) => await adminService(t, LOGINS),
  ...Object.fromEntries(behaviourTopologies().map((name) => [`redis ${name}`, async (t: Test) => await adminService(t, { ...LOGINS, ...(await redisModeOn(name)).env })]))
}

const NEW_PASSWORD = 'purple elephant juggling teacups'

for (const [mode, start] of Object.entries(MODES)) {
  t.test(`${mode}: accounts through the admin API`, async (t) => {
    const service = await start(t)
    const { issuer, adminUrl } = service
    const { token, clientId: actor } = await adminToken(service, ['admin:users:read', 'admin:users:write'])
    const login = async (username: string, password: string) => await call(`${issuer}/api/auth/login`, 'POST', undefined, { username, password })
    const me = async (accessToken: string) => (await call(`${issuer}/api/auth/me`, 'GET', accessToken)).status

    t.test('create applies the password policy, as the users CLI does', async (t) => {
      for (const [password, message] of [
        ['short', /at least 15 characters/],
        ['password1234567890', /too common|too easy/],
        ['alice-correct-horse-battery', /must not contain the username/],
        ['auth-service-is-my-password', /must not contain "auth-service"/]
      ] as const) {
        const refused = await call(`${adminUrl}/users`, 'POST', token, { username: 'alice', password })
        t.equal(refused.status, 400, password)
        t.match(refused.body.message, message)
      }
      t.equal((await call(`${adminUrl}/users`, 'POST', token, { username: 'bad\u202ename', password: PASSWORD })).status, 400, 'a name that could disguise a log line')
      const created = await call(`${adminUrl}/users`, 'POST', token, { username: 'Alice', password: PASSWORD })
      t.equal(created.status, 201)
      t.match(created.body, { username: 'Alice', disabled: false })
      t.notOk('passwordHash' in created.body)
      t.equal(created.headers.get('location'), '/admin/v1/users/Alice')
      t.equal((await call(`${adminUrl}/users`, 'POST', token, { username: 'alice', password: PASSWORD })).status, 409, 'one account per name, case-insensitively')
      t.equal((await login('alice', PASSWORD)).status, 200, 'the account logs in')
      const read = await call(`${adminUrl}/users/alice`, 'GET', token)
      t.same(read.body, created.body)
      t.equal(read.headers.get('etag'), created.headers.get('etag'))
    })

    t.test('a password change ends the account\'s tokens, as the CLI\'s does', async (t) => {
      const before = (await login('alice', PASSWORD)).body.data.accessToken
      t.equal(await me(before), 200)
      t.equal((await call(`${adminUrl}/users/alice/password`, 'PUT', token, { password: 'alice is short' })).status, 400, 'the policy applies')
      t.equal((await call(`${adminUrl}/users/alice/password`, 'PUT', token, { password: NEW_PASSWORD }, { 'if-match': '"stale"' })).status, 412)
      const changed = await call(`${adminUrl}/users/alice/password`, 'PUT', token, { password: NEW_PASSWORD })
      t.equal(changed.status, 200)
      t.equal(await me(before), 401, 'the earlier token is refused')
      t.equal((await login('alice', PASSWORD)).status, 401, 'the old password no longer logs in')
      t.equal((await login('alice', NEW_PASSWORD)).status, 200)
    })

    t.test('disable ends the tokens and the logins; enable lets logins in again, not the earlier tokens', async (t) => {
      const before = (await login('alice', NEW_PASSWORD)).body.data.accessToken
      const disabled = await call(`${adminUrl}/users/alice/disable`, 'POST', token)
      t.equal(disabled.status, 200)
      t.equal(disabled.body.disabled, true)
      t.equal(await me(before), 401)
      t.equal((await login('alice', NEW_PASSWORD)).status, 401)
      const enabled = await call(`${adminUrl}/users/alice/enable`, 'POST', token, undefined, { 'if-match': disabled.headers.get('etag')! })
      t.equal(enabled.status, 200)
      t.equal(enabled.body.disabled, false)
      t.equal(await me(before), 401, 'the token from before stays refused')
      t.equal((await login('alice', NEW_PASSWORD)).status, 200)
    })

    t.test('delete needs If-Match and ends every token', async (t) => {
      const before = (await login('alice', NEW_PASSWORD)).body.data.accessToken
      t.equal((await call(`${adminUrl}/users/alice`, 'DELETE', token)).status, 428)
      t.equal((await call(`${adminUrl}/users/alice`, 'DELETE', token, undefined, { 'if-match': '"stale"' })).status, 412)
      const read = await call(`${adminUrl}/users/alice`, 'GET', token)
      t.equal((await call(`${adminUrl}/users/alice`, 'DELETE', token, undefined, { 'if-match': read.headers.get('etag')! })).status, 204)
      t.equal(await me(before), 401)
      t.equal((await call(`${adminUrl}/users/alice`, 'GET', token)).status, 404)
      t.equal((await call(`${adminUrl}/users/alice/disable`, 'POST', token)).status, 404)
    })

    t.test('listing pages in username order', async (t) => {
      for (const username of ['carol', 'bob', 'dave']) t.equal((await call(`${adminUrl}/users`, 'POST', token, { username, password: PASSWORD })).status, 201)
      const first = await call(`${adminUrl}/users?limit=2`, 'GET', token)
      t.same(first.body.users.map((user: { username: string }) => user.username), ['bob', 'carol'])
      const second = await call(`${adminUrl}/users?limit=2&cursor=${first.body.next}`, 'GET', token)
      t.same(second.body, { users: [{ username: 'dave', disabled: false, createdAt: second.body.users[0].createdAt, updatedAt: second.body.users[0].updatedAt }] })
    })

    t.test('every change has its audit line; no password, hash or token in any line', async (t) => {
      const audits = service.logLines().filter((line) => line.audit === 'admin')
      t.same(audits.map((line) => [line.actor, line.resource, line.operation, line.target, line.fields]), [
        [actor, 'users', 'create', 'Alice', ['username', 'password']],
        [actor, 'users', 'change_password', 'Alice', ['password']],
        [actor, 'users', 'disable', 'Alice', ['disabled']],
        [actor, 'users', 'enable', 'Alice', ['disabled']],
        [actor, 'users', 'delete', 'Alice', undefined],
        [actor, 'users', 'create', 'carol', ['username', 'password']],
        [actor, 'users', 'create', 'bob', ['username', 'password']],
        [actor, 'users', 'create', 'dave', ['username', 'password']]
      ])
      const text = service.logText()
      for (const secret of [PASSWORD, NEW_PASSWORD, 'alice is short', '$argon2id$', token]) t.notOk(text.includes(secret), `never logged: ${secret.slice(0, 10)}...`)
    })
  })
}
