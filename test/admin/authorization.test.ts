import { createSigner } from 'fast-jwt'
import t, { type Test } from 'tap'
import { adminAudience } from '../../src/config.ts'
import { ADMIN_SCOPES, type AdminScope } from '../../src/schemas/admin.ts'
import { ACCESS_TOKEN_TYPE } from '../../src/tokens/access-tokens.ts'
import { PASSWORD, addUser } from '../helper.ts'
import { behaviourTopologies, redisModeOn } from '../redis-topologies.ts'
import { addClient } from '../routes/oauth2/helper.ts'
import { adminService, adminToken, call, type AdminService } from './helper.ts'

/** Every admin operation and the one scope that opens it; changes that would remove a fixture are sent without If-Match (428). */
const OPERATIONS: Array<{ method: string, path: string, scope: AdminScope, body?: unknown }> = [
  { method: 'GET', path: '/clients', scope: 'admin:clients:read' },
  { method: 'GET', path: '/clients/fixture', scope: 'admin:clients:read' },
  { method: 'POST', path: '/clients', scope: 'admin:clients:write', body: { id: 'created', scopes: ['orders:read'], audiences: ['https://orders.internal'] } },
  { method: 'PUT', path: '/clients/fixture', scope: 'admin:clients:write', body: { id: 'fixture', scopes: ['orders:read'], audiences: ['https://orders.internal'], jwksUri: 'https://orders.internal/jwks.json' } },
  { method: 'DELETE', path: '/clients/fixture', scope: 'admin:clients:write' },
  { method: 'POST', path: '/clients/fixture/rotate-secret', scope: 'admin:clients:write', body: {} },
  { method: 'POST', path: '/clients/fixture/retire-secret', scope: 'admin:clients:write' },
  { method: 'GET', path: '/users', scope: 'admin:users:read' },
  { method: 'GET', path: '/users/fixture-user', scope: 'admin:users:read' },
  { method: 'POST', path: '/users', scope: 'admin:users:write', body: { username: 'created-user', password: PASSWORD } },
  { method: 'PUT', path: '/users/fixture-user/password', scope: 'admin:users:write', body: { password: 'another horse battery staple' } },
  { method: 'POST', path: '/users/fixture-user/disable', scope: 'admin:users:write' },
  { method: 'POST', path: '/users/fixture-user/enable', scope: 'admin:users:write' },
  { method: 'DELETE', path: '/users/fixture-user', scope: 'admin:users:write' },
  { method: 'GET', path: '/keys', scope: 'admin:keys:read' },
  { method: 'POST', path: '/keys/some-kid/revoke', scope: 'admin:keys:write' }
]

/** Embedded, and Redis on one topology. */
const MODES: Record<string, (t: Test) => Promise<AdminService>> = {
  embedded: async (t) => await adminService(t),
  ...Object.fromEntries(behaviourTopologies().map((name) => [`redis ${name}`, async (t: Test) => await adminService(t, (await redisModeOn(name)).env)]))
}

/** The challenge's parameters: `Bearer realm="x", error="y"` -> { realm: 'x', error: 'y' }. */
function challenge (header: string | null): Record<string, string> {
  t.match(header, /^Bearer /)
  return Object.fromEntries([...(header ?? '').matchAll(/(\w+)="([^"]*)"/g)].map(([, name, value]) => [name, value]))
}

for (const [mode, start] of Object.entries(MODES)) {
  t.test(`${mode}: the admin API opens to the service's own client tokens for ADMIN_AUDIENCE with the scope`, async (t) => {
    const service = await start(t)
    const { app, adminUrl } = service
    await addClient(app, { clientId: 'fixture', scopes: ['orders:read'], audiences: ['https://orders.internal'] })
    await addUser(app, 'fixture-user', PASSWORD)

    t.test('each scope opens exactly its operations', async (t) => {
      const tokens = new Map<AdminScope, { only: string, allBut: string }>()
      for (const scope of ADMIN_SCOPES) {
        tokens.set(scope, { only: (await adminToken(service, [scope])).token, allBut: (await adminToken(service, ADMIN_SCOPES.filter((other) => other !== scope))).token })
      }
      for (const { method, path, scope, body } of OPERATIONS) {
        const { only, allBut } = tokens.get(scope)!
        const refused = await call(`${adminUrl}${path}`, method, allBut, body)
        t.equal(refused.status, 403, `${method} ${path} without ${scope}`)
        t.same(challenge(refused.headers.get('www-authenticate')), { realm: 'auth-service', error: 'insufficient_scope', scope, error_description: `The token lacks the scope ${scope}` })
        t.same(refused.body, { message: `The token lacks the scope ${scope}` })
        const allowed = await call(`${adminUrl}${path}`, method, only, body)
        t.notOk([401, 403].includes(allowed.status), `${method} ${path} with ${scope} alone: ${allowed.status} ${JSON.stringify(allowed.body)}`)
        t.ok(allowed.status < 500)
      }
    })

    t.test('no other credential opens it: 401 with the RFC 6750 challenge', async (t) => {
      const url = `${adminUrl}/clients`
      const none = await call(url, 'GET', undefined)
      t.equal(none.status, 401)
      t.equal(none.headers.get('www-authenticate'), 'Bearer realm="auth-service"', 'no error code for a request without a token (RFC 6750 §3.1)')

      const login = app.accessTokens.issueUserToken('fixture-user').accessToken
      const other = (await adminToken(service, ADMIN_SCOPES, ['https://orders.internal'])).token
      const both = (await adminToken(service, ADMIN_SCOPES, ['https://orders.internal', adminAudience(app.config)])).token
      const revoked = await adminToken(service)
      await app.accessTokens.revoke(await app.accessTokens.verify(revoked.token, 'client'))
      const { privateKeyPem, algorithm, kid } = app.accessTokens.keyRing.signingKey
      const sign = createSigner({ key: privateKeyPem, algorithm, kid, header: { alg: algorithm, typ: ACCESS_TOKEN_TYPE } })
      const iat = Math.floor(Date.now() / 1000) - 1000
      const expired = sign({ iss: app.config.JWT_ISSUER, sub: 'fixture', client_id: 'fixture', aud: adminAudience(app.config), scope: ADMIN_SCOPES.join(' '), iat, exp: iat + 600, jti: 'expired' })
      const forged = (await adminToken(service)).token.replace(/\.[^.]+$/, '.AAAA')

      for (const [what, token, description] of [
        ['a login token', login, /login token does not open the admin API/],
        ['a client token for another audience', other, /its aud must include http:\/\/127\.0\.0\.1:\d+\/admin \(ADMIN_AUDIENCE\)/],
        ['an expired client token', expired, /Token has expired/],
        ['a revoked client token', revoked.token, /Token has been revoked/],
        ['a forged signature', forged, /./],
        ['not a JWT', 'not-a-token', /Token is malformed/]
      ] as const) {
        const refused = await call(url, 'GET', token)
        t.equal(refused.status, 401, what)
        const parameters = challenge(refused.headers.get('www-authenticate'))
        t.equal(parameters.error, 'invalid_token', what)
        t.match(parameters.error_description, description, what)
        t.same(Object.keys(refused.body), ['message'], `${what}: the one error shape`)
      }
      t.equal((await call(url, 'GET', both)).status, 200, 'a token whose audiences include ADMIN_AUDIENCE opens it')
      t.equal((await call(url, 'GET', undefined, undefined, { authorization: 'Basic Zm9vOmJhcg==' })).status, 401, 'client credentials themselves do not')
    })

    t.test('a removed client\'s token stops opening it at once', async (t) => {
      const { token, clientId } = await adminToken(service)
      t.equal((await call(`${adminUrl}/keys`, 'GET', token)).status, 200)
      await app.clients.remove(clientId)
      t.equal((await call(`${adminUrl}/keys`, 'GET', token)).status, 401)
    })

    t.test('the operations are counted by resource, operation and outcome', async (t) => {
      const text = await app.metrics.registry.metrics()
      t.match(text, /auth_admin_operations_total\{resource="clients",operation="list",outcome="done"\} \d+/)
      t.match(text, /auth_admin_operations_total\{resource="clients",operation="list",outcome="refused"\} \d+/)
      t.match(text, /auth_admin_operations_total\{resource="users",operation="change_password",outcome="done"\} 1\n/)
    })
  })
}

t.test('ADMIN_AUDIENCE may be a client\'s audience, JWT_AUDIENCE still may not', async (t) => {
  const service = await adminService(t, { ADMIN_AUDIENCE: 'https://admin.internal' })
  const { token } = await adminToken(service, ['admin:keys:read'], ['https://admin.internal'])
  t.equal((await call(`${service.adminUrl}/keys`, 'GET', token)).status, 200)
  const { app } = service
  const refused = await call(`${service.adminUrl}/clients`, 'POST', (await adminToken(service)).token, { id: 'sneaky', scopes: ['x'], audiences: [app.config.JWT_AUDIENCE] })
  t.equal(refused.status, 400)
  t.match(refused.body.message, /audience of login tokens/)
  const admin = await call(`${service.adminUrl}/clients`, 'POST', (await adminToken(service)).token, { id: 'ci-pipeline', scopes: ['admin:clients:write'], audiences: ['https://admin.internal'] })
  t.equal(admin.status, 201, 'an admin client can be registered through the API')
})
