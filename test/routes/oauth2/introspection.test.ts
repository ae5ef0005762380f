import type { FastifyInstance } from 'fastify'
import t from 'tap'
import { PASSWORD, addUser, buildTestApp, untilClock } from '../../helper.ts'
import { behaviourTopologies, redisModeOn } from '../../redis-topologies.ts'
import { FORM, addClient, basic, clientsCli, listeningService } from './helper.ts'

type Credentials = [clientId: string, secret: string]

const introspect = async (app: FastifyInstance, [clientId, secret]: Credentials, token: string) =>
  (await app.inject({ method: 'POST', url: '/oauth2/introspect', headers: { ...FORM, authorization: basic(clientId, secret) }, payload: `token=${token}` })).json()

/** A token for the client; `resources` are sent as one `resource` parameter each (RFC 8707 §2). */
async function grant (app: FastifyInstance, [clientId, secret]: Credentials, ...resources: string[]): Promise<string> {
  const form = new URLSearchParams([['grant_type', 'client_credentials'], ...resources.map((resource) => ['resource', resource])])
  const response = await app.inject({ method: 'POST', url: '/oauth2/token', headers: { ...FORM, authorization: basic(clientId, secret) }, payload: form.toString() })
  if (response.statusCode !== 200) throw new Error(`grant for ${clientId}: ${response.body}`)
  return response.json().access_token
}

async function login (app: FastifyInstance): Promise<string> {
  return (await app.inject({ method: 'POST', url: '/api/auth/login', payload: { username: 'alice', password: PASSWORD } })).json().data.accessToken
}

t.test('introspection tells login tokens too, to a client serving their audience: active while the login routes accept one, inactive once they refuse it', async (t) => {
  const app = await buildTestApp(t)
  await addUser(app, 'alice', PASSWORD)
  const accountsApi: Credentials = ['accounts-api', await addClient(app, { clientId: 'accounts-api', serves: ['internal-services'] })]
  const token = await login(app)

  t.match(await introspect(app, accountsApi, token), { active: true, token_type: 'Bearer', sub: 'alice', username: 'alice', aud: 'internal-services', iss: 'http://localhost:3000' })
  t.same(await introspect(app, accountsApi, 'not-a-jwt'), { active: false }, 'malformed')
  const [clientId, secret] = accountsApi
  t.equal((await app.inject({ method: 'POST', url: '/oauth2/revoke', headers: { ...FORM, authorization: basic(clientId, secret) }, payload: `token=${token}` })).statusCode, 200)
  t.match(await introspect(app, accountsApi, token), { active: true }, 'RFC 7009 revocation by a client leaves a login token alone')

  t.equal((await app.inject({ method: 'POST', url: '/api/auth/logout', headers: { authorization: `Bearer ${token}` } })).statusCode, 200)
  t.same(await introspect(app, accountsApi, token), { active: false }, 'logged out')
})

// Embedded, and Redis mode: the clients and revocations introspection reads are shared state.
for (const mode of ['embedded', ...behaviourTopologies()] as const) {
  t.test(`${mode}: a client introspects its own tokens and those for a resource it serves; anything else is inactive`, async (t) => {
    const { app } = await listeningService(t, mode === 'embedded' ? {} : (await redisModeOn(mode)).env)
    await addUser(app, 'alice', PASSWORD)
    const billing: Credentials = ['billing', await addClient(app, { clientId: 'billing' })]
    const probe: Credentials = ['probe', await addClient(app, { clientId: 'probe' })]
    const ordersApi: Credentials = ['orders-api', await addClient(app, { clientId: 'orders-api', serves: ['https://orders.internal'] })]
    const accountsApi: Credentials = ['accounts-api', await addClient(app, { clientId: 'accounts-api', serves: ['internal-services'] })]
    const forOrders = await grant(app, billing, 'https://orders.internal')
    const forBilling = await grant(app, billing, 'https://billing.internal')
    const forBoth = await grant(app, billing, 'https://billing.internal', 'https://orders.internal')
    const alices = await login(app)

    t.match(await introspect(app, billing, forOrders), { active: true, client_id: 'billing' }, 'its own token')
    t.match(await introspect(app, billing, forBilling), { active: true, client_id: 'billing' }, 'its own token, for any audience')
    t.match(await introspect(app, ordersApi, forOrders), { active: true, client_id: 'billing', aud: 'https://orders.internal' }, 'a token for the resource it serves')
    t.match(await introspect(app, ordersApi, forBoth), { active: true, aud: ['https://billing.internal', 'https://orders.internal'] }, 'a token for it among other resources')
    t.match(await introspect(app, probe, await grant(app, probe)), { active: true, client_id: 'probe' }, 'a client serving nothing still introspects its own')
    t.match(await introspect(app, accountsApi, alices), { active: true, username: 'alice' }, 'a login token, by a client serving JWT_AUDIENCE')

    // The attack: a caller that serves none of these learns nothing about them.
    t.same(await introspect(app, probe, forOrders), { active: false }, 'another client\'s token')
    t.same(await introspect(app, probe, alices), { active: false }, 'a login token')
    t.same(await introspect(app, ordersApi, forBilling), { active: false }, 'a token for a resource it does not serve')
    t.same(await introspect(app, probe, forBoth), { active: false }, 'a token for several resources, none of them its')
    t.same(await introspect(app, ordersApi, alices), { active: false }, 'a login token, by a client not serving JWT_AUDIENCE')
    t.same(await introspect(app, billing, alices), { active: false }, 'a login token, by a client that only gets tokens')
  })

  t.test(`${mode}: a removed client's tokens stay dead when its id is registered again, even within the same second`, async (t) => {
    const { app } = await listeningService(t, mode === 'embedded' ? {} : (await redisModeOn(mode)).env)
    const ordersApi: Credentials = ['orders-api', await addClient(app, { clientId: 'orders-api', serves: ['https://orders.internal'] })]
    const added = await clientsCli(app.config, 'add', 'billing', '--scope', 'orders:read orders:write orders:admin', '--audience', 'https://orders.internal', '--ttl', '86400')
    t.equal(added.code, 0, 'registered')
    // From the start of a second, so the token, the removal and the new registration would share it.
    await untilClock((Math.floor(Date.now() / 1000) + 1) * 1000)
    const old = await grant(app, ['billing', added.stdout.trim()])
    t.match(await introspect(app, ordersApi, old), { active: true, scope: 'orders:read orders:write orders:admin' }, 'control')
    t.equal((await clientsCli(app.config, 'remove', 'billing')).code, 0)
    t.same(await introspect(app, ordersApi, old), { active: false }, 'removed: inactive')

    const again = await clientsCli(app.config, 'add', 'billing', '--scope', 'orders:read', '--audience', 'https://orders.internal')
    t.equal(again.code, 0, 'registered again')
    const billing: Credentials = ['billing', again.stdout.trim()]
    t.same(await introspect(app, ordersApi, old), { active: false }, 'registered again: the old token stays dead')
    t.same(await introspect(app, billing, old), { active: false }, 'also to the new client of that id')
    const fresh = await grant(app, billing)
    t.match(await introspect(app, ordersApi, fresh), { active: true, scope: 'orders:read' }, 'a token of the new registration, at once, is active')
  })
}
