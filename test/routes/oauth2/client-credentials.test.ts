import { createServer } from 'node:http'
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import { createRemoteJWKSet, decodeJwt, exportJWK, generateKeyPair, jwtVerify, SignJWT, type CryptoKey as JoseKey } from 'jose'
import * as oauth from 'oauth4webapi'
import * as client from 'openid-client'
import t from 'tap'
import { behaviourTopologies, redisModeOn } from '../../redis-topologies.ts'
import { untilClock } from '../../helper.ts'
import { addClient, basic, listeningService, postForm } from './helper.ts'

// openid-client v6 and oauth4webapi refuse http:// issuers unless told otherwise; these tests run
// the service on http://127.0.0.1, so every call passes allowInsecureRequests. Production issuers are https.
const insecure = { execute: [client.allowInsecureRequests], algorithm: 'oauth2' as const }

async function discover (issuer: string, clientId: string, auth: client.ClientAuth): Promise<client.Configuration> {
  return await client.discovery(new URL(issuer), clientId, undefined, auth, insecure)
}

/** A resource server's check: signature from the JWKS, issuer, audience, and the at+jwt type (RFC 9068). */
async function verifyAsResourceServer (issuer: string, token: string, audience: string) {
  const jwks = createRemoteJWKSet(new URL(`${issuer}/.well-known/jwks.json`))
  return await jwtVerify(token, jwks, { issuer, audience, typ: 'at+jwt' })
}

async function keyPair (alg: 'EdDSA' | 'ES256' | 'PS256' | 'RS256', kid: string) {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true })
  return { privateKey, jwk: { ...await exportJWK(publicKey), kid, alg } }
}

// Embedded, and Redis mode.
for (const mode of ['embedded', ...behaviourTopologies()] as const) {
  t.test(`${mode}: openid-client gets tokens with each client authentication; resource servers verify them`, async (t) => {
    const { app, issuer } = await listeningService(t, mode === 'embedded' ? {} : (await redisModeOn(mode)).env)
    const secret = await addClient(app, { clientId: 'billing' })
    const rsa = await keyPair('PS256', 'rsa-1')
    const ed = await keyPair('EdDSA', 'ed-1')
    await addClient(app, { clientId: 'reports', jwks: { keys: [rsa.jwk, ed.jwk] }, scopes: ['orders:read'], audiences: ['https://orders.internal'], serves: ['https://orders.internal'], tokenTtlSeconds: 120 })

    const viaBasic = await discover(issuer, 'billing', client.ClientSecretBasic(secret))
    t.equal(viaBasic.serverMetadata().issuer, issuer)
    const basicToken = await client.clientCredentialsGrant(viaBasic, { scope: 'orders:read', resource: 'https://billing.internal' })
    t.match(basicToken, { token_type: 'bearer', scope: 'orders:read', expires_in: 900 })
    const { payload, protectedHeader } = await verifyAsResourceServer(issuer, basicToken.access_token, 'https://billing.internal')
    t.equal(protectedHeader.typ, 'at+jwt')
    t.equal(protectedHeader.kid, app.accessTokens.keyRing.signingKey.kid)
    t.match(payload, { iss: issuer, sub: 'billing', client_id: 'billing', aud: 'https://billing.internal', scope: 'orders:read' })
    t.equal(payload.exp! - payload.iat!, 900)
    t.type(payload.jti, 'string')
    await t.rejects(verifyAsResourceServer(issuer, basicToken.access_token, 'https://orders.internal'), 'another audience does not accept it')

    const viaPost = await discover(issuer, 'billing', client.ClientSecretPost(secret))
    const postToken = await client.clientCredentialsGrant(viaPost)
    t.equal(postToken.scope, 'orders:read orders:write', 'no scope asked: every scope of the client')
    const { payload: postClaims } = await verifyAsResourceServer(issuer, postToken.access_token, 'https://orders.internal')
    t.equal(postClaims.aud, 'https://orders.internal', 'no resource asked: the first audience')

    for (const [name, key] of [['PS256', rsa], ['EdDSA', ed]] as const) {
      const viaJwt = await discover(issuer, 'reports', client.PrivateKeyJwt({ key: key.privateKey as CryptoKey, kid: key.jwk.kid }))
      const jwtToken = await client.clientCredentialsGrant(viaJwt)
      t.match(jwtToken, { scope: 'orders:read', expires_in: 120 }, `private_key_jwt with ${name}: the client's own lifetime`)
      await verifyAsResourceServer(issuer, jwtToken.access_token, 'https://orders.internal')
    }

    // oauth4webapi's RFC 9068 validation, as a resource server using it would run it.
    const as = await oauth.processDiscoveryResponse(new URL(issuer), await oauth.discoveryRequest(new URL(issuer), { algorithm: 'oauth2', [oauth.allowInsecureRequests]: true }))
    const claims = await oauth.validateJwtAccessToken(as, new Request('http://orders.internal/', { headers: { authorization: `Bearer ${postToken.access_token}` } }), 'https://orders.internal', { [oauth.allowInsecureRequests]: true })
    t.equal(claims.client_id, 'billing')

    // Introspection and revocation through openid-client, as the client that owns the token.
    const before = await client.tokenIntrospection(viaBasic, basicToken.access_token)
    t.match(before, { active: true, client_id: 'billing', sub: 'billing', scope: 'orders:read', aud: 'https://billing.internal', iss: issuer, token_type: 'Bearer' })
    await client.tokenRevocation(viaBasic, basicToken.access_token)
    t.same(await client.tokenIntrospection(viaBasic, basicToken.access_token), { active: false })
    t.match(await client.tokenIntrospection(viaBasic, postToken.access_token), { active: true }, 'only the revoked token is inactive')

    // Another client's token is not revocable by this one: a silent 200, the token stays active.
    const viaReports = await discover(issuer, 'reports', client.PrivateKeyJwt({ key: ed.privateKey as CryptoKey, kid: 'ed-1' }))
    await client.tokenRevocation(viaReports, postToken.access_token)
    t.match(await client.tokenIntrospection(viaBasic, postToken.access_token), { active: true })
    await client.tokenRevocation(viaReports, 'not-a-token')

    t.same(await client.tokenIntrospection(viaBasic, 'garbage'), { active: false }, 'malformed')
    const foreign = await new SignJWT({ client_id: 'billing' }).setProtectedHeader({ alg: 'EdDSA', typ: 'at+jwt', kid: app.accessTokens.keyRing.signingKey.kid })
      .setIssuer(issuer).setSubject('billing').setAudience('https://orders.internal').setIssuedAt().setExpirationTime('5m').setJti('x').sign(ed.privateKey)
    t.same(await client.tokenIntrospection(viaBasic, foreign), { active: false }, 'signed by another key under our kid')

    // A removed client's tokens are inactive at once, also to a client serving their audience.
    t.match(await client.tokenIntrospection(viaReports, postToken.access_token), { active: true })
    t.ok(await app.clients.remove('billing'))
    t.same(await client.tokenIntrospection(viaReports, postToken.access_token), { active: false })
  })
}

t.test('metadata: RFC 8414 at the well-known path, cacheable, endpoints under the issuer; no client\'s scopes', async (t) => {
  const { app, issuer } = await listeningService(t)
  await addClient(app, { clientId: 'a', scopes: ['payroll:export', 'orders:write'], audiences: ['https://payroll.internal'] })
  const response = await fetch(`${issuer}/.well-known/oauth-authorization-server`)
  t.equal(response.status, 200)
  t.equal(response.headers.get('cache-control'), 'public, max-age=300')
  const body = await response.text()
  // Anyone may read it: a list of every client's scopes would map the internal services for them.
  t.notMatch(body, /payroll|orders/, 'names no scope or resource of any client')
  const metadata = JSON.parse(body)
  t.notOk('scopes_supported' in metadata, 'scopes_supported is left out (RECOMMENDED, not required)')
  t.match(metadata, {
    issuer,
    token_endpoint: `${issuer}/oauth2/token`,
    jwks_uri: `${issuer}/.well-known/jwks.json`,
    introspection_endpoint: `${issuer}/oauth2/introspect`,
    revocation_endpoint: `${issuer}/oauth2/revoke`,
    grant_types_supported: ['client_credentials'],
    response_types_supported: [],
    token_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post', 'private_key_jwt'],
    token_endpoint_auth_signing_alg_values_supported: ['EdDSA', 'Ed25519', 'ES256', 'PS256', 'RS256']
  })
})

/** A private_key_jwt assertion as openid-client would make it, with what a test wants changed. */
async function assertion (key: JoseKey, claims: { iss?: string, sub?: string, aud?: string | string[], exp?: number, jti?: string | null, alg?: string, kid?: string }) {
  const now = Math.floor(Date.now() / 1000)
  const jwt = new SignJWT(claims.jti === null ? {} : { jti: claims.jti ?? crypto.randomUUID() })
    .setProtectedHeader({ alg: claims.alg ?? 'ES256', kid: claims.kid ?? 'ec-1' })
    .setIssuer(claims.iss ?? 'reports').setSubject(claims.sub ?? 'reports').setAudience(claims.aud ?? '').setIssuedAt(now)
    .setExpirationTime(claims.exp ?? now + 60)
  return await jwt.sign(key)
}

const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer'

t.test('private_key_jwt: replay, audience, lifetime and algorithm are enforced', async (t) => {
  const { app, issuer } = await listeningService(t)
  const ec = await keyPair('ES256', 'ec-1')
  await addClient(app, { clientId: 'reports', jwks: { keys: [ec.jwk] } })
  const token = `${issuer}/oauth2/token`
  const grant = async (clientAssertion: string) => await postForm(token, { grant_type: 'client_credentials', client_assertion_type: JWT_BEARER, client_assertion: clientAssertion })

  const once = await assertion(ec.privateKey, { aud: issuer })
  t.equal((await grant(once)).status, 200, 'aud = the issuer')
  const replayed = await grant(once)
  t.equal(replayed.status, 401)
  t.same(replayed.body, { error: 'invalid_client', error_description: 'Client assertion has already been used (jti)' })

  t.equal((await grant(await assertion(ec.privateKey, { aud: [issuer] }))).status, 200, 'aud = [the issuer], one member')
  const now = Math.floor(Date.now() / 1000)
  const cases: Array<[string, Parameters<typeof assertion>[1], RegExp]> = [
    ['another audience', { aud: 'https://elsewhere.example' }, /aud/],
    // draft-ietf-oauth-rfc7523bis: the issuer identifier is the sole audience value, nothing like it and nothing beside it.
    ['the token endpoint (RFC 7523 allowed it)', { aud: token }, /aud/],
    ['the issuer with a trailing slash', { aud: `${issuer}/` }, /aud/],
    ['another audience beside the issuer', { aud: ['https://other-as.example', issuer] }, /aud/],
    ['the issuer twice', { aud: [issuer, issuer] }, /aud/],
    ['expired', { aud: issuer, exp: now - 120 }, /exp/],
    ['expiring more than an hour ahead', { aud: issuer, exp: now + 7200 }, /3600 seconds/],
    ['without jti', { aud: issuer, jti: null }, /jti/],
    ['iss not the client', { aud: issuer, iss: 'someone' }, /iss/]
  ]
  for (const [name, claims, description] of cases) {
    const response = await grant(await assertion(ec.privateKey, claims))
    t.equal(response.status, 401, name)
    t.equal(response.body.error, 'invalid_client', name)
    t.match(response.body.error_description, description, name)
  }

  // A key of the attacker's, or an HMAC "signature" with the public key as secret: both fail alike.
  const attacker = await keyPair('ES256', 'ec-1')
  t.same((await grant(await assertion(attacker.privateKey, { aud: issuer }))).body, { error: 'invalid_client', error_description: 'Client authentication failed' })
  const hmac = await new SignJWT({ jti: 'h' }).setProtectedHeader({ alg: 'HS256', kid: 'ec-1' }).setIssuer('reports').setSubject('reports').setAudience(issuer)
    .setExpirationTime('1m').sign(new TextEncoder().encode(JSON.stringify(ec.jwk)))
  t.equal((await grant(hmac)).status, 401, 'HS256 is never accepted')
  const unsigned = `${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from(JSON.stringify({ iss: 'reports', sub: 'reports', aud: issuer, exp: now + 60, jti: 'n' })).toString('base64url')}.`
  t.equal((await grant(unsigned)).status, 401, 'alg none is never accepted')
})

t.test('RFC 8707: several resources get one token for the set when the client may have each, else invalid_target', async (t) => {
  const { app, issuer } = await listeningService(t)
  const secret = await addClient(app, { clientId: 'billing' })
  const auth = { authorization: basic('billing', secret) }
  const [orders, billing] = ['https://orders.internal', 'https://billing.internal']
  // What Go's clientcredentials sends for EndpointParams: url.Values{"resource": {orders, billing}}.
  const grant = async (...resources: string[]) => await postForm(`${issuer}/oauth2/token`,
    new URLSearchParams([['grant_type', 'client_credentials'], ...resources.map((resource) => ['resource', resource])]).toString(), auth)

  const both = await grant(orders, billing)
  t.equal(both.status, 200, JSON.stringify(both.body))
  for (const audience of [orders, billing]) {
    const { payload } = await verifyAsResourceServer(issuer, both.body.access_token, audience)
    t.same(payload.aud, [orders, billing], `${audience} accepts the token for the set`)
  }
  const as = await oauth.processDiscoveryResponse(new URL(issuer), await oauth.discoveryRequest(new URL(issuer), { algorithm: 'oauth2', [oauth.allowInsecureRequests]: true }))
  const request = new Request('http://billing.internal/', { headers: { authorization: `Bearer ${both.body.access_token}` } })
  t.same((await oauth.validateJwtAccessToken(as, request, billing, { [oauth.allowInsecureRequests]: true })).aud, [orders, billing], 'oauth4webapi accepts it')
  const introspect = async (token: string) => (await postForm(`${issuer}/oauth2/introspect`, { token }, auth)).body
  t.match(await introspect(both.body.access_token), { active: true, client_id: 'billing', aud: [orders, billing] })
  t.equal((await postForm(`${issuer}/oauth2/revoke`, { token: both.body.access_token }, auth)).status, 200)
  t.same(await introspect(both.body.access_token), { active: false }, 'and revokes')

  const once = await grant(orders, orders)
  t.equal(once.status, 200)
  t.equal((await verifyAsResourceServer(issuer, once.body.access_token, orders)).payload.aud, orders, 'the same resource twice is one audience')
  const foreign = await grant(orders, 'https://payroll.internal')
  t.same([foreign.status, foreign.body.error], [400, 'invalid_target'], 'one resource the client may not have: no token for any')
  const scopeTwice = await postForm(`${issuer}/oauth2/token`, 'grant_type=client_credentials&scope=orders:read&scope=orders:read', auth)
  t.same([scopeTwice.status, scopeTwice.body.error], [400, 'invalid_request'], 'other parameters stay single (RFC 6749 §3.2)')
})

t.test('openid-client and oauth4webapi sign private_key_jwt with aud the issuer, a string: both are granted', async (t) => {
  const { app, issuer } = await listeningService(t)
  const ed = await keyPair('EdDSA', 'ed-1')
  await addClient(app, { clientId: 'reports', jwks: { keys: [ed.jwk] } })
  const sent: unknown[] = []
  /** fetch, noting the aud of the client assertion a request carries. */
  const noting = async (url: string, init: { body?: unknown }): Promise<Response> => {
    const clientAssertion = new URLSearchParams(String(init.body)).get('client_assertion')
    if (clientAssertion !== null) sent.push(decodeJwt(clientAssertion).aud)
    return await fetch(url, init as RequestInit)
  }

  const config = await discover(issuer, 'reports', client.PrivateKeyJwt({ key: ed.privateKey as CryptoKey, kid: 'ed-1' }))
  config[client.customFetch] = noting
  t.ok((await client.clientCredentialsGrant(config)).access_token, 'openid-client')

  const options = { [oauth.allowInsecureRequests]: true, [oauth.customFetch]: noting }
  const as = await oauth.processDiscoveryResponse(new URL(issuer), await oauth.discoveryRequest(new URL(issuer), { algorithm: 'oauth2', ...options }))
  const reports = { client_id: 'reports' }
  const response = await oauth.clientCredentialsGrantRequest(as, reports, oauth.PrivateKeyJwt({ key: ed.privateKey as CryptoKey, kid: 'ed-1' }), new URLSearchParams(), options)
  t.ok((await oauth.processClientCredentialsResponse(as, reports, response)).access_token, 'oauth4webapi')
  t.same(sent, [issuer, issuer])
})

t.test('RFC 6749 errors: exact shapes and statuses', async (t) => {
  const { app, issuer } = await listeningService(t)
  const secret = await addClient(app, { clientId: 'billing' })
  const token = `${issuer}/oauth2/token`
  const auth = { authorization: basic('billing', secret) }
  const expectError = async (name: string, response: Awaited<ReturnType<typeof postForm>>, status: number, error: string) => {
    t.equal(response.status, status, name)
    t.same(Object.keys(response.body ?? {}).sort(), ['error', 'error_description'], `${name}: only error and error_description`)
    t.equal(response.body?.error, error, name)
  }

  await expectError('no grant_type', await postForm(token, {}, auth), 400, 'invalid_request')
  await expectError('grant_type twice', await postForm(token, 'grant_type=client_credentials&grant_type=client_credentials', auth), 400, 'invalid_request')
  await expectError('password grant', await postForm(token, { grant_type: 'password' }, auth), 400, 'unsupported_grant_type')
  await expectError('unknown scope', await postForm(token, { grant_type: 'client_credentials', scope: 'orders:read admin' }, auth), 400, 'invalid_scope')
  await expectError('empty scope', await postForm(token, { grant_type: 'client_credentials', scope: ' ' }, auth), 400, 'invalid_scope')
  await expectError('foreign resource', await postForm(token, { grant_type: 'client_credentials', resource: 'https://payroll.internal' }, auth), 400, 'invalid_target')
  await expectError('two authentication methods', await postForm(token, { grant_type: 'client_credentials', client_id: 'billing', client_secret: secret }, auth), 400, 'invalid_request')
  await expectError('JSON body', await fetch(token, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: '{"grant_type":"client_credentials"}' })
    .then(async (response) => ({ status: response.status, headers: response.headers, body: await response.json() })), 415, 'invalid_request')

  const wrongSecret = await postForm(token, { grant_type: 'client_credentials' }, { authorization: basic('billing', 'x'.repeat(43)) })
  await expectError('wrong secret (Basic)', wrongSecret, 401, 'invalid_client')
  t.match(wrongSecret.headers.get('www-authenticate'), /^Basic /)
  const unknownClient = await postForm(token, { grant_type: 'client_credentials', client_id: 'nobody', client_secret: secret })
  await expectError('unknown client (post)', unknownClient, 401, 'invalid_client')
  t.same(unknownClient.body, wrongSecret.body, 'an unknown client and a wrong secret look the same')
  await expectError('no client authentication', await postForm(token, { grant_type: 'client_credentials' }), 401, 'invalid_client')
  await expectError('a client id no client can have', await postForm(token, { grant_type: 'client_credentials' }, { authorization: basic('{x}'.repeat(100), secret) }), 401, 'invalid_client')
  await expectError('malformed Basic', await postForm(token, { grant_type: 'client_credentials' }, { authorization: 'Basic !!!' }), 401, 'invalid_client')

  // RFC 6749 §2.3.1: id and secret are form-encoded inside Basic; a secret with reserved characters works.
  const odd = await addClient(app, { clientId: 'odd.id~1' })
  t.equal((await postForm(token, { grant_type: 'client_credentials' }, { authorization: basic('odd.id~1', odd) })).status, 200)
  t.equal((await postForm(`${issuer}/oauth2/introspect`, { token: 'x' })).status, 401, 'introspection needs client authentication')
})

t.test('every 401 of the OAuth endpoints carries a WWW-Authenticate challenge (RFC 9110 §15.5.2), whichever way the client failed', async (t) => {
  // Each failure counts against this one IP: room for all of them before the 429s.
  const { app, issuer } = await listeningService(t, { CLIENT_AUTH_FAILURE_MAX: '100' })
  const secret = await addClient(app, { clientId: 'billing' })
  const ec = await keyPair('ES256', 'ec-1')
  await addClient(app, { clientId: 'reports', jwks: { keys: [ec.jwk] } })
  const used = await assertion(ec.privateKey, { aud: issuer })
  t.equal((await postForm(`${issuer}/oauth2/token`, { grant_type: 'client_credentials', client_assertion_type: JWT_BEARER, client_assertion: used })).status, 200)
  const viaAssertion = (clientAssertion: string, form: Record<string, string> = {}) => ({ client_assertion_type: JWT_BEARER, client_assertion: clientAssertion, ...form })

  const failures: Array<[string, Record<string, string>, Record<string, string>?]> = [
    ['no client authentication', {}],
    ['malformed Basic', {}, { authorization: 'Basic !!!' }],
    ['Basic, not form-encoded', {}, { authorization: `Basic ${btoa('%zz:x')}` }],
    ['Basic, a wrong secret', {}, { authorization: basic('billing', 'x'.repeat(43)) }],
    ['client_secret_post, a wrong secret', { client_id: 'billing', client_secret: 'x'.repeat(43) }],
    ['client_secret_post, an unknown client', { client_id: 'nobody', client_secret: secret }],
    ['client_secret_post, an id no client can have', { client_id: '{x}', client_secret: secret }],
    ['client_secret_post, a key client', { client_id: 'reports', client_secret: secret }],
    ['an assertion that is no JWT', viaAssertion('not-a-jwt')],
    ['an assertion without sub or client_id', viaAssertion(await new SignJWT({}).setProtectedHeader({ alg: 'ES256' }).sign(ec.privateKey))],
    ['an assertion for a secret client', viaAssertion(await assertion(ec.privateKey, { iss: 'billing', sub: 'billing', aud: issuer }))],
    ['an assertion signed by another key', viaAssertion(await assertion((await keyPair('ES256', 'ec-1')).privateKey, { aud: issuer }))],
    ['an assertion for another audience', viaAssertion(await assertion(ec.privateKey, { aud: 'https://elsewhere.example' }))],
    ['an assertion used before', viaAssertion(used)]
  ]
  for (const path of ['/oauth2/token', '/oauth2/introspect', '/oauth2/revoke']) {
    for (const [name, form, headers] of failures) {
      const response = await postForm(`${issuer}${path}`, { grant_type: 'client_credentials', token: 'x', ...form }, headers)
      t.equal(response.status, 401, `${path}, ${name}`)
      t.equal(response.headers.get('www-authenticate'), 'Basic realm="auth-service", charset="UTF-8"', `${path}, ${name}: the challenge`)
    }
  }
})

t.test('secret rotation: both secrets work, then only the new one', async (t) => {
  const { app, issuer } = await listeningService(t)
  const { runClientsCli } = await import('../../../src/cli/clients.ts')
  const run = async (...argv: string[]) => {
    let stdout = ''
    let stderr = ''
    const code = await runClientsCli(argv, { stdout: { write: (chunk: string) => { stdout += chunk; return true } } as NodeJS.WritableStream, stderr: { write: (chunk: string) => { stderr += chunk; return true } } as NodeJS.WritableStream, config: app.config })
    return { code, stdout, stderr }
  }
  const added = await run('add', 'billing', '--scope', 'orders:read', '--audience', 'https://orders.internal')
  t.equal(added.code, 0, added.stderr)
  const oldSecret = added.stdout.trim()
  t.match(oldSecret, /^[A-Za-z0-9_-]{43}$/, 'the only line on stdout is a 256-bit base64url secret')
  const rotated = await run('rotate-secret', 'billing')
  const newSecret = rotated.stdout.trim()
  t.match(newSecret, /^[A-Za-z0-9_-]{43}$/)
  const grant = async (secret: string) => (await postForm(`${issuer}/oauth2/token`, { grant_type: 'client_credentials' }, { authorization: basic('billing', secret) })).status
  t.same([await grant(oldSecret), await grant(newSecret)], [200, 200], 'during the rotation, both')
  t.equal((await run('rotate-secret', 'billing')).code, 1, 'no third secret while two are in force')
  t.equal((await run('retire-secret', 'billing')).code, 0)
  t.same([await grant(oldSecret), await grant(newSecret)], [401, 200], 'after retire-secret, only the new one')

  const timed = await run('rotate-secret', 'billing', '--old-expires-in', '1')
  const oldStops = Date.now() + 1000
  const newest = timed.stdout.trim()
  t.same([await grant(newSecret), await grant(newest)], [200, 200])
  await untilClock(oldStops)
  t.same([await grant(newSecret), await grant(newest)], [401, 200], 'the old one stops by itself')
})

t.test('workload identity: a projected service-account token of a stand-in cluster issuer is the client assertion', async (t) => {
  // The cluster's OIDC issuer, standing in for the Kubernetes API server: its own key, its own JWKS endpoint.
  const clusterKey = await keyPair('RS256', 'cluster-1')
  const clusterIssuer = createServer((_request, response) => {
    response.setHeader('content-type', 'application/json')
    response.end(JSON.stringify({ keys: [clusterKey.jwk] }))
  })
  clusterIssuer.listen(0, '127.0.0.1')
  await once(clusterIssuer, 'listening')
  t.teardown(() => clusterIssuer.close())
  const clusterUrl = `http://127.0.0.1:${(clusterIssuer.address() as AddressInfo).port}`

  const { app, issuer } = await listeningService(t)
  const subject = 'system:serviceaccount:shop:billing'
  await addClient(app, { clientId: 'billing', federated: { issuer: clusterUrl, subject, jwksUri: `${clusterUrl}/openid/v1/jwks` } })

  /** What the kubelet writes into the projected volume: RS256, aud our issuer, an hour of life. */
  const projectedToken = async (overrides: { sub?: string, aud?: string | string[], key?: JoseKey } = {}) =>
    await new SignJWT({ 'kubernetes.io': { namespace: 'shop', serviceaccount: { name: 'billing' } } })
      .setProtectedHeader({ alg: 'RS256', kid: 'cluster-1' })
      .setIssuer(clusterUrl).setSubject(overrides.sub ?? subject).setAudience(overrides.aud ?? issuer)
      .setIssuedAt().setNotBefore('0s').setExpirationTime('1h').setJti(crypto.randomUUID())
      .sign(overrides.key ?? clusterKey.privateKey)

  // A caller with openid-client: the token file's content is the client assertion, nothing else is secret.
  const saToken = await projectedToken()
  const workloadIdentity: client.ClientAuth = (_as, metadata, body) => {
    body.set('client_id', metadata.client_id)
    body.set('client_assertion_type', JWT_BEARER)
    body.set('client_assertion', saToken)
  }
  const config = await discover(issuer, 'billing', workloadIdentity)
  const first = await client.clientCredentialsGrant(config, { scope: 'orders:read' })
  const { payload } = await verifyAsResourceServer(issuer, first.access_token, 'https://orders.internal')
  t.match(payload, { sub: 'billing', client_id: 'billing', scope: 'orders:read' })
  t.ok(await client.clientCredentialsGrant(config), 'the projected token is used again until the kubelet replaces it')

  const grant = async (assertionToken: string) => await postForm(`${issuer}/oauth2/token`, { grant_type: 'client_credentials', client_id: 'billing', client_assertion_type: JWT_BEARER, client_assertion: assertionToken })
  t.equal((await grant(await projectedToken({ sub: 'system:serviceaccount:shop:other' }))).status, 401, 'another service account')
  t.equal((await grant(await projectedToken({ aud: 'https://kubernetes.default.svc' }))).status, 401, 'a token for the API server, not for us')
  // A token the orders service was given for itself and us: the orders service must not be able to replay it as the workload.
  for (const aud of [['https://orders.internal', issuer], [issuer, 'https://orders.internal'], `${issuer}/`, `${issuer}/oauth2/token`]) {
    const refused = await grant(await projectedToken({ aud }))
    t.same([refused.status, refused.body.error], [401, 'invalid_client'], `aud ${JSON.stringify(aud)}`)
  }
  t.equal((await grant(await projectedToken({ aud: [issuer] }))).status, 200, 'aud [the issuer], as the kubelet writes it')
  t.equal((await grant(await projectedToken({ key: (await keyPair('RS256', 'cluster-1')).privateKey }))).status, 401, 'not signed by the cluster')
})
