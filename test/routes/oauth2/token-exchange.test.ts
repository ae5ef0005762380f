import { Writable } from 'node:stream'
import type { FastifyInstance } from 'fastify'
import { createRemoteJWKSet, decodeJwt, generateKeyPair, jwtVerify, SignJWT } from 'jose'
import t, { type Test } from 'tap'
import { buildApp } from '../../../src/app.ts'
import { addUser, PASSWORD, testConfig } from '../../helper.ts'
import { freePort } from '../../redis-server.ts'
import { behaviourTopologies, redisModeOn } from '../../redis-topologies.ts'
import { addClient, basic, postForm } from './helper.ts'

const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange'
const ACCESS_TOKEN = 'urn:ietf:params:oauth:token-type:access_token'
const JWT = 'urn:ietf:params:oauth:token-type:jwt'
const LOGIN_AUDIENCE = 'internal-services'
const BILLING = 'https://billing.internal'
const LEDGER = 'https://ledger.internal'

type Log = Array<Record<string, unknown>>

/** One replica listening on a free loopback port (`issuer`: its URL, JWT_ISSUER unless env names another), its log lines (LOG_LEVEL info) collected. */
async function replica (t: Test, env: Record<string, string>, port?: number): Promise<{ app: FastifyInstance, issuer: string, log: Log }> {
  port ??= await freePort()
  const issuer = `http://127.0.0.1:${port}`
  const log: Log = []
  const stream = new Writable({
    write (chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n')) if (line !== '') log.push(JSON.parse(line))
      done()
    }
  })
  const app = await buildApp(await testConfig(t, { JWT_ISSUER: issuer, ...env }), { level: 'info', stream })
  t.teardown(() => app.close())
  await app.listen({ port, host: '127.0.0.1' })
  if (app.redis !== undefined && app.redis.status !== 'ready') await new Promise((resolve) => app.redis!.once('ready', resolve))
  return { app, issuer, log }
}

/**
 * Two replicas on one store: on Redis, two services sharing its state (each with its own port,
 * both with one JWT_ISSUER, as behind one load balancer); embedded, the one service twice.
 */
async function twoReplicas (t: Test, mode: string, env: Record<string, string> = {}) {
  if (mode === 'embedded') {
    const one = await replica(t, env)
    return [one, one]
  }
  const shared = { ...(await redisModeOn(mode as 'standalone')).env, ...env }
  const a = await replica(t, shared)
  const bPort = await freePort()
  // b's own URL to call it at; tokens name the one issuer.
  const b = await replica(t, { ...shared, JWT_ISSUER: a.issuer }, bPort)
  return [a, b]
}

/**
 * The call chain of the issue: orders receives alice's login token and exchanges it for billing;
 * billing exchanges that for ledger. Each client may exchange what it may introspect.
 */
async function registerChain (app: FastifyInstance) {
  const secrets = {
    orders: await addClient(app, { clientId: 'orders', scopes: ['orders:read', 'billing:charge', 'ledger:record'], audiences: ['https://orders.internal'], serves: [LOGIN_AUDIENCE], exchangeAudiences: [BILLING, 'https://tax.internal'] }),
    billing: await addClient(app, { clientId: 'billing', scopes: ['billing:charge', 'ledger:record', 'ledger:audit'], audiences: [BILLING], serves: [BILLING], exchangeAudiences: [LEDGER, 'https://archive.internal'] }),
    ledger: await addClient(app, { clientId: 'ledger', scopes: ['ledger:record'], audiences: [LEDGER], serves: [LEDGER], exchangeAudiences: ['https://archive.internal'] }),
    plain: await addClient(app, { clientId: 'plain', serves: [LOGIN_AUDIENCE] })
  }
  return (clientId: keyof typeof secrets) => ({ authorization: basic(clientId, secrets[clientId]) })
}

async function login (issuer: string, username: string): Promise<string> {
  const response = await fetch(`${issuer}/api/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username, password: PASSWORD }) })
  return (await response.json()).data.accessToken
}

async function exchange (issuer: string, auth: Record<string, string>, subjectToken: string, form: Record<string, string> | string = {}) {
  const base = new URLSearchParams({ grant_type: TOKEN_EXCHANGE, subject_token: subjectToken, subject_token_type: ACCESS_TOKEN })
  const extra = typeof form === 'string' ? form : new URLSearchParams(form).toString()
  return await postForm(`${issuer}/oauth2/token`, `${base.toString()}${extra === '' ? '' : `&${extra}`}`, auth)
}

async function introspect (issuer: string, auth: Record<string, string>, token: string) {
  return (await postForm(`${issuer}/oauth2/introspect`, { token }, auth)).body
}

/** A resource server's check: signature from the JWKS, issuer, audience, typ at+jwt. */
async function verifyAsResourceServer (issuer: string, token: string, audience: string) {
  return (await jwtVerify(token, createRemoteJWKSet(new URL(`${issuer}/.well-known/jwks.json`)), { issuer, audience, typ: 'at+jwt' })).payload
}

/** alice's token exchanged by orders for billing, then by billing for ledger, on replica `at`. */
async function chain (issuer: string, as: Awaited<ReturnType<typeof registerChain>>, username: string) {
  const loginToken = await login(issuer, username)
  const forBilling = await exchange(issuer, as('orders'), loginToken, { resource: BILLING, scope: 'billing:charge ledger:record' })
  const forLedger = await exchange(issuer, as('billing'), forBilling.body.access_token, { audience: LEDGER, scope: 'ledger:record' })
  return { loginToken, billingToken: forBilling.body.access_token as string, ledgerToken: forLedger.body.access_token as string }
}

for (const mode of ['embedded', ...behaviourTopologies()]) {
  t.test(`${mode}: a login token exchanged by orders for billing, then by billing for ledger, each verified from the JWKS`, async (t) => {
    const [{ app, issuer, log }] = await twoReplicas(t, mode, { TOKEN_EXCHANGE_MAX_DEPTH: '2' })
    const as = await registerChain(app)
    await addUser(app, 'alice', PASSWORD)
    const loginToken = await login(issuer, 'alice')

    const forBilling = await exchange(issuer, as('orders'), loginToken, { resource: BILLING, scope: 'billing:charge ledger:record' })
    t.equal(forBilling.status, 200, 'orders exchanges the login token', { body: forBilling.body })
    t.equal(forBilling.headers.get('cache-control'), 'no-store')
    t.match(forBilling.body, { issued_token_type: ACCESS_TOKEN, token_type: 'Bearer', scope: 'billing:charge ledger:record' })
    const billing = await verifyAsResourceServer(issuer, forBilling.body.access_token, BILLING)
    t.match(billing, { iss: issuer, sub: 'alice', client_id: 'orders', aud: BILLING, scope: 'billing:charge ledger:record', act: { sub: 'orders' } })
    t.notOk((billing.act as Record<string, unknown>).act, 'a first exchange names one actor')
    t.ok(billing.exp! <= decodeJwt(loginToken).exp!, 'never later than the login token')
    t.equal(forBilling.body.expires_in, billing.exp! - billing.iat!)

    const forLedger = await exchange(issuer, as('billing'), forBilling.body.access_token, { audience: LEDGER, scope: 'ledger:record', requested_token_type: JWT })
    t.equal(forLedger.status, 200, 'billing exchanges the billing token', { body: forLedger.body })
    t.equal(forLedger.body.issued_token_type, JWT)
    const ledger = await verifyAsResourceServer(issuer, forLedger.body.access_token, LEDGER)
    t.match(ledger, { sub: 'alice', client_id: 'billing', aud: LEDGER, scope: 'ledger:record', act: { sub: 'billing', act: { sub: 'orders' } } })
    t.ok(ledger.exp! <= billing.exp!)
    await t.rejects(verifyAsResourceServer(issuer, forLedger.body.access_token, BILLING), 'only ever for its one audience')

    const introspected = await introspect(issuer, as('ledger'), forLedger.body.access_token)
    t.match(introspected, { active: true, sub: 'alice', client_id: 'billing', act: { sub: 'billing', act: { sub: 'orders' } } })
    t.notOk('derived_from' in introspected, 'the chain\'s token ids stay out of introspection')
    const me = await fetch(`${issuer}/api/auth/me`, { headers: { authorization: `Bearer ${forLedger.body.access_token}` } })
    t.equal(me.status, 401, 'an exchanged token is no login token')

    const tooDeep = await exchange(issuer, as('ledger'), forLedger.body.access_token, { scope: 'ledger:record' })
    t.match(tooDeep, { status: 400, body: { error: 'invalid_request', error_description: /TOKEN_EXCHANGE_MAX_DEPTH/ } }, 'a third actor is beyond TOKEN_EXCHANGE_MAX_DEPTH=2')

    const metadata = await (await fetch(`${issuer}/.well-known/oauth-authorization-server`)).json()
    t.ok(metadata.grant_types_supported.includes(TOKEN_EXCHANGE))

    const audits = log.filter((line) => line.audit === 'token' && line.exchange !== undefined)
    t.match(audits.slice(0, 2), [
      { outcome: 'granted', clientId: 'orders', exchange: { subject: 'alice', actors: ['orders'], audience: BILLING } },
      { outcome: 'granted', clientId: 'billing', exchange: { subject: 'alice', actors: ['billing', 'orders'], audience: LEDGER } }
    ])
    t.match(audits[2], { outcome: 'invalid', exchange: { subject: 'alice', actors: ['ledger', 'billing', 'orders'] } })
    const logged = JSON.stringify(log)
    t.notOk([loginToken, forBilling.body.access_token, forLedger.body.access_token].some((token) => logged.includes(token.split('.')[2])), 'no token is logged')
  })
}

t.test('every refusal, with the error RFC 8693 and RFC 6749 name', async (t) => {
  const [{ app, issuer }] = await twoReplicas(t, 'embedded')
  const as = await registerChain(app)
  await addUser(app, 'alice', PASSWORD)
  const loginToken = await login(issuer, 'alice')
  const { billingToken } = await chain(issuer, as, 'alice')
  const refused = async (auth: Record<string, string>, subject: string, form: Record<string, string> | string, error: string, description: RegExp) => {
    const answer = await exchange(issuer, auth, subject, form)
    t.match(answer, { status: 400, body: { error, error_description: description } }, `${error}: ${description}`)
  }

  await refused(as('plain'), loginToken, {}, 'unauthorized_client', /not registered to exchange/)
  const missing = await postForm(`${issuer}/oauth2/token`, { grant_type: TOKEN_EXCHANGE }, as('orders'))
  t.match(missing, { status: 400, body: { error: 'invalid_request', error_description: /subject_token and subject_token_type are required/ } })
  const untyped = await postForm(`${issuer}/oauth2/token`, { grant_type: TOKEN_EXCHANGE, subject_token: loginToken }, as('orders'))
  t.match(untyped, { status: 400, body: { error: 'invalid_request' } })
  await refused(as('orders'), loginToken, 'subject_token_type=x', 'invalid_request', /included more than once/)
  const samlTyped = await postForm(`${issuer}/oauth2/token`, { grant_type: TOKEN_EXCHANGE, subject_token: loginToken, subject_token_type: 'urn:ietf:params:oauth:token-type:saml2' }, as('orders'))
  t.match(samlTyped, { status: 400, body: { error: 'invalid_request', error_description: /subject_token_type must be/ } })
  await refused(as('orders'), loginToken, { requested_token_type: 'urn:ietf:params:oauth:token-type:refresh_token' }, 'invalid_request', /requested_token_type must be/)

  await refused(as('orders'), 'not-a-token', {}, 'invalid_request', /subject_token is invalid: Token is malformed/)
  await refused(as('orders'), `${loginToken.slice(0, -4)}AAAA`, {}, 'invalid_request', /subject_token is invalid/)
  const { privateKey } = await generateKeyPair('EdDSA')
  const foreign = await new SignJWT({ scope: 'billing:charge' }).setProtectedHeader({ alg: 'EdDSA', typ: 'at+jwt', kid: app.accessTokens.keyRing.signingKey.kid })
    .setIssuer(issuer).setSubject('alice').setAudience(LOGIN_AUDIENCE).setIssuedAt().setExpirationTime('5m').setJti('f').sign(privateKey)
  await refused(as('orders'), foreign, {}, 'invalid_request', /subject_token is invalid/)
  await refused(as('billing'), loginToken, {}, 'invalid_request', /neither this client's nor for a resource it serves/)
  await refused(as('ledger'), billingToken, {}, 'invalid_request', /neither this client's nor for a resource it serves/)

  await refused(as('orders'), loginToken, { resource: LEDGER }, 'invalid_target', /not one this client may exchange tokens for/)
  await refused(as('orders'), loginToken, { audience: LOGIN_AUDIENCE }, 'invalid_target', /not one this client may exchange tokens for/)
  await refused(as('orders'), loginToken, `resource=${encodeURIComponent(BILLING)}&audience=${encodeURIComponent('https://elsewhere.internal')}`, 'invalid_target', /not one/)
  await refused(as('orders'), loginToken, { scope: 'orders:write' }, 'invalid_scope', /orders:write is not both/)
  await refused(as('orders'), loginToken, { scope: ' ' }, 'invalid_scope', /scope is empty/)
  await refused(as('billing'), billingToken, { scope: 'ledger:audit' }, 'invalid_scope', /ledger:audit is not both the subject token's and this client's/)

  const ownToken = (await postForm(`${issuer}/oauth2/token`, { grant_type: 'client_credentials' }, as('orders'))).body.access_token
  await refused(as('orders'), loginToken, { actor_token: ownToken }, 'invalid_request', /actor_token and actor_token_type go together/)
  await refused(as('orders'), loginToken, { actor_token: billingToken, actor_token_type: ACCESS_TOKEN }, 'invalid_request', /actor_token must be a token of this client itself/)
  await refused(as('orders'), loginToken, { actor_token: loginToken, actor_token_type: ACCESS_TOKEN }, 'invalid_request', /actor_token must be a token of this client itself/)
  await refused(as('orders'), loginToken, { actor_token: 'x', actor_token_type: ACCESS_TOKEN }, 'invalid_request', /actor_token is invalid/)
  const withActor = await exchange(issuer, as('orders'), loginToken, { actor_token: ownToken, actor_token_type: JWT, scope: 'billing:charge' })
  t.equal(withActor.status, 200, 'the client\'s own token as actor_token')
  t.match(decodeJwt(withActor.body.access_token), { sub: 'alice', aud: BILLING, act: { sub: 'orders' } })
  const twoTargets = await exchange(issuer, as('orders'), loginToken, `audience=${encodeURIComponent(BILLING)}&audience=${encodeURIComponent('https://tax.internal')}`)
  t.same(decodeJwt(twoTargets.body.access_token).aud, [BILLING, 'https://tax.internal'], 'audience repeated: one token for both')
  t.equal(twoTargets.body.scope, 'orders:read billing:charge ledger:record', 'no scope asked of a login token: every scope of the client')

  const unknownGrant = await postForm(`${issuer}/oauth2/token`, { grant_type: 'password' }, as('orders'))
  t.match(unknownGrant, { status: 400, body: { error: 'unsupported_grant_type' } })
  const logout = await fetch(`${issuer}/api/auth/logout`, { method: 'POST', headers: { authorization: `Bearer ${loginToken}` } })
  t.equal(logout.status, 200)
  await refused(as('orders'), loginToken, {}, 'invalid_request', /subject_token is invalid: Token has been revoked/)
})

// What ends a root token, a user or a middle client ends every token derived from it, on the other replica.
const ENDINGS: Array<{ name: string, end: (context: { app: FastifyInstance, issuer: string, username: string, tokens: Awaited<ReturnType<typeof chain>>, as: Awaited<ReturnType<typeof registerChain>> }) => Promise<void> }> = [
  { name: 'the root login token logged out', end: async ({ issuer, tokens }) => { await fetch(`${issuer}/api/auth/logout`, { method: 'POST', headers: { authorization: `Bearer ${tokens.loginToken}` } }) } },
  { name: 'the middle token revoked by its client', end: async ({ issuer, tokens, as }) => { await postForm(`${issuer}/oauth2/revoke`, { token: tokens.billingToken }, as('orders')) } },
  { name: 'the user disabled', end: async ({ app, username }) => { await app.users.setDisabled(username, true) } },
  { name: 'the user\'s password changed', end: async ({ app, username }) => { await app.users.setPasswordHash(username, await app.passwords.hash(`${PASSWORD} 2`)) } },
  { name: 'the user removed', end: async ({ app, username }) => { await app.users.remove(username) } },
  { name: 'the first actor (orders) removed', end: async ({ app }) => { await app.clients.remove('orders') } }
]

for (const mode of ['embedded', ...behaviourTopologies()]) {
  t.test(`${mode}: revocation follows the chain to every derived token, on the other replica`, async (t) => {
    for (const [index, { name, end }] of ENDINGS.entries()) {
      const [a, b] = await twoReplicas(t, mode)
      const as = await registerChain(a.app)
      const username = `alice${index}`
      await addUser(a.app, username, PASSWORD)
      const tokens = await chain(a.issuer, as, username)
      t.equal((await introspect(b.issuer, as('ledger'), tokens.ledgerToken)).active, true, `${name}: live before`)
      await end({ app: b.app, issuer: b.issuer, username, tokens, as })
      t.same(await introspect(a.issuer, as('ledger'), tokens.ledgerToken), { active: false }, `${name}: the ledger token is inactive`)
      t.same(await introspect(a.issuer, as('billing'), tokens.billingToken), { active: false }, `${name}: the billing token is inactive`)
      const again = await exchange(a.issuer, as('ledger'), tokens.ledgerToken)
      t.equal(again.body.error, 'invalid_request', `${name}: and no longer exchanged`)
    }
  })
}

t.test('embedded: the last actor removed ends its exchanged tokens for good; a client token is a subject too, ended with its client', async (t) => {
  const [{ app, issuer }] = await twoReplicas(t, 'embedded')
  const as = await registerChain(app)
  await addUser(app, 'alice', PASSWORD)
  const tokens = await chain(issuer, as, 'alice')
  const ordersOwn = (await postForm(`${issuer}/oauth2/token`, { grant_type: 'client_credentials' }, as('orders'))).body.access_token
  const fromClientToken = (await exchange(issuer, as('orders'), ordersOwn, { scope: 'billing:charge' })).body.access_token
  t.match(decodeJwt(fromClientToken), { sub: 'orders', client_id: 'orders', aud: BILLING, act: { sub: 'orders' } })

  await app.clients.remove('billing')
  t.same(await introspect(issuer, as('ledger'), tokens.ledgerToken), { active: false }, 'billing removed: the ledger token it exchanged for ends')
  // Registered as the CLI does: from the next whole second (registrationTime), after every token above.
  await addClient(app, { clientId: 'billing', scopes: ['ledger:record'], audiences: [BILLING], serves: [BILLING], createdAt: (Math.floor(Date.now() / 1000) + 1) * 1000 })
  t.same(await introspect(issuer, as('ledger'), tokens.ledgerToken), { active: false }, 'a new billing does not revive it')

  const billingServer = { authorization: basic('billing-server', await addClient(app, { clientId: 'billing-server', serves: [BILLING] })) }
  t.equal((await introspect(issuer, billingServer, fromClientToken)).active, true)
  await app.clients.remove('orders')
  t.same(await introspect(issuer, billingServer, fromClientToken), { active: false }, 'orders removed: the token exchanged from its own token ends')
})

t.test('embedded: random requested scopes and audiences through HTTP never widen the scope, the audience or the lifetime', async (t) => {
  const [{ app, issuer }] = await twoReplicas(t, 'embedded')
  const as = await registerChain(app)
  await addUser(app, 'alice', PASSWORD)
  const { billingToken } = await chain(issuer, as, 'alice')
  const subject = decodeJwt(billingToken)
  const allowed = ['billing:charge', 'ledger:record', 'ledger:audit'].filter((scope) => String(subject.scope).split(' ').includes(scope))
  let seed = 8693
  const random = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648)
  const some = (items: string[]) => items.filter(() => random() < 0.5)
  for (let i = 0; i < 40; i++) {
    const scope = some(['billing:charge', 'ledger:record', 'ledger:audit', 'orders:read']).join(' ')
    const targets = some([LEDGER, BILLING, 'https://archive.internal'])
    const form = [scope === '' ? '' : `scope=${encodeURIComponent(scope)}`, ...targets.map((target) => `${random() < 0.5 ? 'resource' : 'audience'}=${encodeURIComponent(target)}`)].filter((part) => part !== '').join('&')
    const answer = await exchange(issuer, as('billing'), billingToken, form)
    if (answer.status !== 200) {
      t.ok(['invalid_scope', 'invalid_target'].includes(answer.body.error), `case ${i} (${form}): refused, ${answer.body.error}`)
      continue
    }
    const claims = decodeJwt(answer.body.access_token)
    t.ok(String(claims.scope).split(' ').every((granted) => allowed.includes(granted)) && [claims.aud].flat().every((target) => [LEDGER, 'https://archive.internal'].includes(String(target))) && claims.exp! <= subject.exp!,
      `case ${i} (${form}): ${String(claims.scope)} for ${String(claims.aud)}, no wider than the subject token`)
  }
})
