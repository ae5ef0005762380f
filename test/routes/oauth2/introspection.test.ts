import type { FastifyInstance } from 'fastify'
import t from 'tap'
import { PASSWORD, addUser, buildTestApp, untilClock } from '../../helper.js'
import { behaviourTopologies, redisModeOn } from '../../redis-topologies.js'
import { FORM, addClient, basic, clientsCli, listeningService } from './helper.js'

type Credentials = [clientId: string, secret: string]

const introspect = async (app: FastifyInstance, [clientId, secret]: Credentials, token: string) =>
  (await app.inject({ method: 'POST', url: '/oauth2/introspect', headers: { ...FORM, authorization: basic(clientId, secret) }, payload: `token=${token}` })).json()

async function grant (app: FastifyInstance, [clientId, secret]: Credentials, form: Record<string, string> = {}): Promise<string> {
  const response = await app.inject({
    method: 'POST', url: '/oauth2/token', headers: { ...FORM, authorization: basic(clientId, secret) }, payload: new URLSearchParams({ grant_type: 'client_credentials', ...form }).toString()
  })
  if (response.statusCode !== 200) throw new Error(`grant for ${clientId}: ${response.body}`)
  return response.json().access_token
}

t.test('introspection tells login tokens too: active while the login routes accept one, inactive once they refuse it', async (t) => {
  const app = await buildTestApp(t)
  await addUser(app, 'alice', PASSWORD)
  const auth = { authorization: basic('billing', await addClient(app, { clientId: 'billing' })) }
  const introspect = async (app: FastifyInstance, token: string) =>
    (await app.inject({ method: 'POST', url: '/oauth2/introspect', headers: { ...FORM, ...auth }, payload: `token=${token}` })).json()
  const login = await app.inject({ method: 'POST', url: '/api/auth/login', payload: { username: 'alice', password: PASSWORD } })
  const token: string = login.json().data.accessToken

  t.match(await introspect(app, token), { active: true, token_type: 'Bearer', sub: 'alice', username: 'alice', aud: 'internal-services', iss: 'http://localhost:3000' })
  t.same(await introspect(app, 'not-a-jwt'), { active: false }, 'malformed')
  t.equal((await app.inject({ method: 'POST', url: '/oauth2/revoke', headers: { ...FORM, ...auth }, payload: `token=${token}` })).statusCode, 200)
  t.match(await introspect(app, token), { active: true }, 'RFC 7009 revocation by a client leaves a login token alone')

  t.equal((await app.inject({ method: 'POST', url: '/api/auth/logout', headers: { authorization: `Bearer ${token}` } })).statusCode, 200)
  t.same(await introspect(app, token), { active: false }, 'logged out')
})

// Embedded, and Redis mode: the clients and revocations introspection reads are shared state.
for (const mode of ['embedded', ...behaviourTopologies()] as const) {
  t.test(`${mode}: a removed client's tokens stay dead when its id is registered again, even within the same second`, async (t) => {
    const { app } = await listeningService(t, mode === 'embedded' ? {} : (await redisModeOn(mode)).env)
    const ordersApi: Credentials = ['orders-api', await addClient(app, { clientId: 'orders-api' })]
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
