import type { FastifyInstance } from 'fastify'
import t from 'tap'
import { PASSWORD, addUser, buildTestApp } from '../../helper.js'
import { FORM, addClient, basic } from './helper.js'

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
