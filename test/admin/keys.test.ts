import t from 'tap'
import { FAST_ROTATION, keyEncryptionKey } from '../tokens/rotation-helper.ts'
import { adminService, adminToken, call } from './helper.ts'

t.test('key files: listed with their state, and not revocable here', async (t) => {
  const service = await adminService(t)
  const { token } = await adminToken(service, ['admin:keys:read', 'admin:keys:write'])
  const listed = await call(`${service.adminUrl}/keys`, 'GET', token)
  const { kid, algorithm } = service.app.accessTokens.keyRing.signingKey
  t.same(listed.body, { managed: false, keys: [{ kid, alg: algorithm, state: 'current' }] })
  const refused = await call(`${service.adminUrl}/keys/${kid}/revoke`, 'POST', token)
  t.equal(refused.status, 409)
  t.match(refused.body.message, /key files/)
})

t.test('managed keys: revoking one, as `keys revoke` does, takes it out of the JWKS at once', async (t) => {
  const { file } = await keyEncryptionKey(t)
  const service = await adminService(t, { ...FAST_ROTATION, JWT_KEY_ENCRYPTION_KEY_FILE: file })
  const { token, clientId } = await adminToken(service, ['admin:keys:read', 'admin:keys:write'])
  const before = await call(`${service.adminUrl}/keys`, 'GET', token)
  t.equal(before.body.managed, true)
  const current = before.body.keys.find((key: { state: string }) => key.state === 'current')
  t.match(current, { kid: /./, alg: 'EdDSA' })
  const signedBefore = (await adminToken(service, ['admin:keys:read'])).token

  const revoked = await call(`${service.adminUrl}/keys/${current.kid}/revoke`, 'POST', token)
  t.equal(revoked.status, 200)
  t.notOk(revoked.body.keys.some((key: { kid: string }) => key.kid === current.kid), 'gone from the keys')
  t.ok(revoked.body.keys.some((key: { state: string }) => key.state === 'current'), 'another key signs')
  const jwks = await (await fetch(`${service.issuer}/.well-known/jwks.json`)).json() as { keys: Array<{ kid: string }> }
  t.notOk(jwks.keys.some((key) => key.kid === current.kid), 'out of the JWKS on this replica at once')
  t.equal((await call(`${service.adminUrl}/keys`, 'GET', signedBefore)).status, 401, 'its tokens are refused')
  t.equal((await call(`${service.adminUrl}/keys/${current.kid}/revoke`, 'POST', (await adminToken(service, ['admin:keys:write'])).token)).status, 404, 'a kid no published key has')
  const audit = service.logLines().find((line) => line.audit === 'admin')
  t.match(audit, { actor: clientId, resource: 'keys', operation: 'revoke', target: current.kid })
})
