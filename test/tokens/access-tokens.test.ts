import { decodeProtectedHeader, importPKCS8, SignJWT } from 'jose'
import t from 'tap'
import { PASSWORD, addUser, buildTestApp } from '../helper.ts'
import { addClient, basic, clientsCli, FORM } from '../routes/oauth2/helper.ts'

const ISSUER = 'http://localhost:3000'
const grant = { clientId: 'billing', audience: 'https://orders.internal', scope: 'orders:read', ttlSeconds: 120 }
const rejected = (message: string) => ({ name: 'InvalidTokenError', message })

t.test('one service issues and verifies login and client tokens; each verification names the kind it expects', async (t) => {
  const app = await buildTestApp(t)
  await addUser(app, 'alice', PASSWORD)
  await addClient(app, { clientId: 'billing' })
  const { accessTokens } = app
  const user = accessTokens.issueUserToken('alice')
  const client = accessTokens.issueClientToken(grant)

  for (const { accessToken } of [user, client]) {
    t.same(decodeProtectedHeader(accessToken), { alg: 'EdDSA', typ: 'at+jwt', kid: accessTokens.keyRing.signingKey.kid })
  }
  t.match(user.claims, { iss: ISSUER, sub: 'alice', aud: 'internal-services' })
  t.equal(user.claims.exp - user.claims.iat, 900, 'a login token lives TOKEN_TTL_SECONDS')
  t.match(client.claims, { iss: ISSUER, sub: 'billing', client_id: 'billing', aud: 'https://orders.internal', scope: 'orders:read' })
  t.equal(client.claims.exp - client.claims.iat, 120, 'a client token lives as long as its grant says')
  t.not(user.claims.jti, client.claims.jti)

  t.same(await accessTokens.verify(user.accessToken, 'user'), user.claims)
  t.same(await accessTokens.verify(client.accessToken, 'client'), client.claims)
  t.equal(accessTokens.claimedKind(user.accessToken), 'user')
  t.equal(accessTokens.claimedKind(client.accessToken), 'client')
  await t.rejects(accessTokens.verify(user.accessToken, 'client'), rejected('Token lacks a required claim'), 'a login token is no client token')
  await t.rejects(accessTokens.verify(client.accessToken, 'user'), rejected('Token was issued by another issuer or for another audience'), 'a client token is no login token')
  t.throws(() => accessTokens.claimedKind('not-a-jwt'), rejected('Token is malformed'))

  const me = await app.inject({ method: 'GET', url: '/api/auth/me', headers: { authorization: `Bearer ${client.accessToken}` } })
  t.equal(me.statusCode, 401, 'the bearer routes answer the rejection with a 401')
  t.equal(me.headers['www-authenticate'], 'Bearer realm="auth-service", error="invalid_token", error_description="Token was issued by another issuer or for another audience"')

  await accessTokens.revoke(user.claims)
  await accessTokens.revoke(client.claims)
  await t.rejects(accessTokens.verify(user.accessToken, 'user'), rejected('Token has been revoked'))
  await t.rejects(accessTokens.verify(client.accessToken, 'client'), rejected('Token has been revoked'))
})

t.test('a client token is its client\'s: not a token of a removed client of the same id, even from the second it was registered again', async (t) => {
  const app = await buildTestApp(t)
  const { signingKey } = app.accessTokens.keyRing
  const ourKey = await importPKCS8(signingKey.privateKeyPem, 'EdDSA')
  const second = Math.floor(Date.now() / 1000)
  const issuedAt = (iat: number) => new SignJWT({ iss: ISSUER, sub: 'billing', client_id: 'billing', aud: 'https://orders.internal', scope: 'orders:read', iat, exp: iat + 120, jti: `at-${iat}` })
    .setProtectedHeader({ alg: 'EdDSA', typ: 'at+jwt', kid: signingKey.kid }).sign(ourKey)

  // Registered half way through a second: a token with that second's iat may be of the client removed before.
  await addClient(app, { clientId: 'billing', createdAt: second * 1000 + 500 })
  await t.rejects(app.accessTokens.verify(await issuedAt(second), 'client'), rejected('Token has been revoked'), 'iat in the second of the registration, which began before it')
  await t.rejects(app.accessTokens.verify(await issuedAt(second - 1), 'client'), rejected('Token has been revoked'), 'iat before the registration')
  t.ok(await app.accessTokens.verify(await issuedAt(second + 1), 'client'), 'iat after the registration')
  // Registered on a second's edge, as the clients CLI registers: that second's tokens are all of this client.
  await app.clients.update('billing', (client) => ({ ...client, createdAt: second * 1000 }))
  t.ok(await app.accessTokens.verify(await issuedAt(second), 'client'), 'iat in the second that began with the registration')
  t.ok(await app.clients.remove('billing'))
  await t.rejects(app.accessTokens.verify(await issuedAt(second), 'client'), rejected('Token has been revoked'), 'no such client')
})

t.test('client tokens are held to the rules login tokens are: type, key, issuer, times, lifetime, claims', async (t) => {
  const app = await buildTestApp(t)
  // Registered before any of the tokens below was issued.
  await addClient(app, { clientId: 'billing', createdAt: 0 })
  const { signingKey } = app.accessTokens.keyRing
  const ourKey = await importPKCS8(signingKey.privateKeyPem, 'EdDSA')
  const now = Math.floor(Date.now() / 1000)
  // Signed with the service's own key: everything but what a case changes is right.
  const signed = (claims: Record<string, unknown> = {}, header: Record<string, unknown> = {}) =>
    new SignJWT({ iss: ISSUER, sub: 'billing', client_id: 'billing', aud: 'https://orders.internal', scope: 'orders:read', iat: now, exp: now + 120, jti: 'a-token', ...claims })
      .setProtectedHeader({ alg: 'EdDSA', typ: 'at+jwt', kid: signingKey.kid, ...header }).sign(ourKey)

  t.match(await app.accessTokens.verify(await signed(), 'client'), { client_id: 'billing' }, 'control: a well-formed token passes')
  t.ok(await app.accessTokens.verify(await signed({ iat: now - 120, exp: now - 2 }), 'client'), 'expired less than the clock tolerance ago: still accepted')
  t.ok(await app.accessTokens.verify(await signed({ iat: now - 86_000, exp: now + 400 }), 'client'), 'a day-long client lifetime is allowed')
  t.match(await app.accessTokens.verify(await signed({ aud: ['https://orders.internal', 'https://billing.internal'] }), 'client'),
    { aud: ['https://orders.internal', 'https://billing.internal'] }, 'a token for several resources (RFC 8707)')

  const cases: Array<[string, Promise<string>, string]> = [
    ['expired', signed({ iat: now - 200, exp: now - 60 }), 'Token has expired'],
    ['not yet valid', signed({ nbf: now + 600 }), 'Token is not yet valid'],
    ['issued in the future', signed({ iat: now + 60, exp: now + 180 }), 'Token was issued in the future'],
    ['a lifetime longer than any client may have', signed({ exp: now + 86_401 }), 'Token lives longer than this service issues tokens for'],
    ['older than any client lifetime, whatever its exp', signed({ iat: now - 86_401, exp: now + 600 }), 'Token has expired'],
    ['another issuer', signed({ iss: 'https://elsewhere.example' }), 'Token was issued by another issuer or for another audience'],
    ['no jti', signed({ jti: undefined }), 'Token lacks a required claim'],
    ['a scope that is not a string', signed({ scope: ['orders:read'] }), 'Token lacks a required claim'],
    ['an empty aud list', signed({ aud: [] }), 'Token lacks a required claim'],
    ['an aud list of a number', signed({ aud: ['https://orders.internal', 7] }), 'Token lacks a required claim'],
    ['typ JWT', signed({}, { typ: 'JWT' }), 'Token is not an access token (typ must be at+jwt)'],
    ['kid of no key', signed({}, { kid: 'no-such-key' }), 'Token was not signed by a known key'],
    ['no kid', signed({}, { kid: undefined }), 'Token was not signed by a known key']
  ]
  for (const [name, token, message] of cases) {
    await t.rejects(app.accessTokens.verify(await token, 'client'), rejected(message), name)
  }
})

t.test('a client token never passes as a login token: not registered, not granted, not accepted by /me, logout or introspection', async (t) => {
  const app = await buildTestApp(t)
  await addUser(app, 'admin', PASSWORD)
  // The attack: a client named like an account (usernames match case-insensitively), for the login tokens' audience.
  const refused = await clientsCli(app.config, 'add', 'Admin', '--scope', 'reports:read', '--audience', 'internal-services')
  t.equal(refused.code, 2, 'the clients CLI refuses the login tokens\' audience')
  t.match(refused.stderr, /internal-services is the audience of login tokens \(JWT_AUDIENCE\)/)
  t.equal(await app.clients.find('Admin'), undefined, 'nothing was registered')

  // A client registered for it before the rule (its record as stored then) gets no token for it.
  const secret = await addClient(app, { clientId: 'Admin', scopes: ['reports:read'], audiences: ['internal-services', 'https://reports.internal'] })
  const grant = async (form: Record<string, string>) => await app.inject({
    method: 'POST', url: '/oauth2/token', headers: { ...FORM, authorization: basic('Admin', secret) }, payload: new URLSearchParams({ grant_type: 'client_credentials', ...form }).toString()
  })
  for (const form of [{}, { resource: 'internal-services' }] as Array<Record<string, string>>) {
    const response = await grant(form)
    t.equal(response.statusCode, 400, `grant ${JSON.stringify(form)}`)
    t.equal(response.json().error, 'invalid_target')
  }
  t.equal((await grant({ resource: 'https://reports.internal' })).statusCode, 200, 'its other audience still works')

  // A token such a client got before the rule, signed by the service's own key.
  const { signingKey } = app.accessTokens.keyRing
  const now = Math.floor(Date.now() / 1000)
  const legacy = await new SignJWT({ iss: ISSUER, sub: 'Admin', client_id: 'Admin', aud: 'internal-services', scope: 'reports:read', iat: now, exp: now + 600, jti: 'legacy' })
    .setProtectedHeader({ alg: 'EdDSA', typ: 'at+jwt', kid: signingKey.kid }).sign(await importPKCS8(signingKey.privateKeyPem, 'EdDSA'))
  for (const [method, url] of [['GET', '/api/auth/me'], ['POST', '/api/auth/logout']] as const) {
    const response = await app.inject({ method, url, headers: { authorization: `Bearer ${legacy}` } })
    t.equal(response.statusCode, 401, `${method} ${url}`)
    t.same(response.json(), { message: 'Token is a client\'s, not a login token' }, `${method} ${url}`)
  }
  await t.rejects(app.accessTokens.verify(legacy, 'user'), rejected('Token is a client\'s, not a login token'))
  await t.rejects(app.accessTokens.verify(legacy, 'client'), rejected('Token was issued by another issuer or for another audience'), 'nor is it a client token: its audience is the login tokens\'')
  const alsoForLogins = await new SignJWT({ iss: ISSUER, sub: 'Admin', client_id: 'Admin', aud: ['https://reports.internal', 'internal-services'], scope: 'reports:read', iat: now, exp: now + 600, jti: 'listed' })
    .setProtectedHeader({ alg: 'EdDSA', typ: 'at+jwt', kid: signingKey.kid }).sign(await importPKCS8(signingKey.privateKeyPem, 'EdDSA'))
  await t.rejects(app.accessTokens.verify(alsoForLogins, 'client'), rejected('Token was issued by another issuer or for another audience'), 'nor with the login tokens\' audience among several')
  await t.rejects(app.accessTokens.verify(alsoForLogins, 'user'), { name: 'InvalidTokenError' }, 'nor as a login token')
  const introspector = await addClient(app, { clientId: 'accounts-api', serves: ['internal-services'] })
  const introspected = await app.inject({ method: 'POST', url: '/oauth2/introspect', headers: { ...FORM, authorization: basic('accounts-api', introspector) }, payload: `token=${legacy}` })
  t.same(introspected.json(), { active: false }, 'introspection: inactive, no username')
})
