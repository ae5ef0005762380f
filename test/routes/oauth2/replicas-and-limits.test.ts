import { once } from 'node:events'
import type { FastifyInstance } from 'fastify'
import { exportJWK, generateKeyPair, SignJWT } from 'jose'
import t, { type Test } from 'tap'
import { buildTestApp, redisMode } from '../../helper.ts'
import { redisModeOn, selectedTopologies, type TopologyName } from '../../redis-topologies.ts'
import { addClient, basic, FORM } from './helper.ts'

const ISSUER = 'http://127.0.0.1:3000'
const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer'

/** A token request through a trusted proxy, from `clientIp`. */
async function tokenRequest (app: FastifyInstance, form: Record<string, string>, headers: Record<string, string> = {}, clientIp = '192.0.2.1') {
  const response = await app.inject({
    method: 'POST',
    url: '/oauth2/token',
    headers: { ...FORM, 'x-forwarded-for': clientIp, ...headers },
    payload: new URLSearchParams({ grant_type: 'client_credentials', ...form }).toString()
  })
  return { status: response.statusCode, headers: response.headers, body: response.json() }
}

/** Start-up does not wait for Redis; a test that registers clients at once must. */
async function redisReady (app: FastifyInstance): Promise<void> {
  if (app.redis!.status !== 'ready') await once(app.redis!, 'ready')
}

async function replicas (t: Test, settings: Record<string, string>, topology: TopologyName) {
  const { env } = await redisModeOn(topology)
  const config = { ...env, JWT_ISSUER: ISSUER, TRUST_PROXY: '127.0.0.1', ...settings }
  const [a, b] = [await buildTestApp(t, config), await buildTestApp(t, config)]
  await Promise.all([a, b].map(redisReady))
  return [a, b]
}

// Redis mode on each topology (standalone, Cluster, Sentinel).
for (const topology of selectedTopologies()) {
  t.test(`two replicas on one Redis: a token revoked on one is inactive on the other at once [${topology}]`, async (t) => {
    const [a, b] = await replicas(t, {}, topology)
    const secret = await addClient(a, { clientId: 'billing' })
    const auth = { authorization: basic('billing', secret) }
    const { body } = await tokenRequest(a, {}, auth)
    const introspect = async (app: FastifyInstance) => (await app.inject({ method: 'POST', url: '/oauth2/introspect', headers: { ...FORM, ...auth }, payload: `token=${body.access_token}` })).json()
    t.equal((await introspect(b)).active, true, 'the other replica knows the client and the token')
    t.equal((await b.inject({ method: 'POST', url: '/oauth2/revoke', headers: { ...FORM, ...auth }, payload: `token=${body.access_token}&token_type_hint=access_token` })).statusCode, 200)
    t.same(await introspect(a), { active: false })
  })

  t.test(`two replicas on one Redis: an assertion used on one is refused on the other [${topology}]`, async (t) => {
    const [a, b] = await replicas(t, {}, topology)
    const { privateKey, publicKey } = await generateKeyPair('ES256')
    await addClient(a, { clientId: 'reports', jwks: { keys: [{ ...await exportJWK(publicKey), kid: 'k' }] } })
    const clientAssertion = await new SignJWT({ jti: 'once' }).setProtectedHeader({ alg: 'ES256', kid: 'k' })
      .setIssuer('reports').setSubject('reports').setAudience(ISSUER).setIssuedAt().setExpirationTime('1m').sign(privateKey)
    const form = { client_assertion_type: JWT_BEARER, client_assertion: clientAssertion }
    t.equal((await tokenRequest(a, form)).status, 200)
    const replay = await tokenRequest(b, form, {}, '192.0.2.99')
    t.equal(replay.status, 401)
    t.equal(replay.body.error_description, 'Client assertion has already been used (jti)')
  })

  t.test(`failed client authentications are limited per client IP across replicas, before any secret is checked [${topology}]`, async (t) => {
    const [a, b] = await replicas(t, { CLIENT_AUTH_FAILURE_MAX: '3', CLIENT_AUTH_FAILURE_WINDOW_MS: '60000' }, topology)
    const secret = await addClient(a, { clientId: 'billing' })
    const wrong = { authorization: basic('billing', 'x'.repeat(43)) }
    const right = { authorization: basic('billing', secret) }
    const statuses = [
      (await tokenRequest(a, {}, wrong)).status,
      (await tokenRequest(b, {}, wrong)).status,
      (await tokenRequest(a, { client_id: 'nobody', client_secret: 'x' })).status
    ]
    t.same(statuses, [401, 401, 401])
    const limited = await tokenRequest(b, {}, right)
    t.equal(limited.status, 429, 'the attacker\'s address is refused even with the right secret')
    t.equal(limited.body.error, 'slow_down')
    t.ok(Number(limited.headers['retry-after']) > 50 && Number(limited.headers['retry-after']) <= 60, `Retry-After ${limited.headers['retry-after']}`)
    const introspection = await a.inject({ method: 'POST', url: '/oauth2/introspect', headers: { ...FORM, ...right, 'x-forwarded-for': '192.0.2.1' }, payload: 'token=x' })
    t.equal(introspection.statusCode, 429, 'introspection shares the limit')

    // The client itself is not locked out: its real caller, elsewhere, still gets tokens.
    t.equal((await tokenRequest(a, {}, right, '198.51.100.7')).status, 200)
    t.equal((await tokenRequest(b, {}, right, '198.51.100.7')).status, 200)
  })

  t.test(`successful grants are limited per client across replicas; failures by others do not use them up [${topology}]`, async (t) => {
    const [a, b] = await replicas(t, { TOKEN_GRANT_RATE_MAX: '3', TOKEN_GRANT_RATE_WINDOW_MS: '60000' }, topology)
    const secret = await addClient(a, { clientId: 'chatty' })
    const other = await addClient(a, { clientId: 'quiet' })
    const chatty = { authorization: basic('chatty', secret) }
    // Attempts with a wrong secret or a bad scope never count: only a grant about to be issued does.
    for (let i = 0; i < 5; i++) t.equal((await tokenRequest(a, {}, { authorization: basic('chatty', 'y'.repeat(43)) }, `203.0.113.${i}`)).status, 401)
    t.equal((await tokenRequest(a, { scope: 'admin' }, chatty)).status, 400)
    t.same([(await tokenRequest(a, {}, chatty)).status, (await tokenRequest(b, {}, chatty)).status, (await tokenRequest(a, {}, chatty)).status], [200, 200, 200])
    const limited = await tokenRequest(b, {}, chatty)
    t.equal(limited.status, 429)
    t.equal(limited.body.error, 'slow_down')
    t.match(limited.body.error_description, /Too many tokens granted to this client/)
    t.ok(Number(limited.headers['retry-after']) >= 1)
    t.equal((await tokenRequest(b, {}, { authorization: basic('quiet', other) })).status, 200, 'another client is unaffected')
  })
}

t.test('embedded mode: the same limits in process', async (t) => {
  const app = await buildTestApp(t, { JWT_ISSUER: ISSUER, TRUST_PROXY: '127.0.0.1', CLIENT_AUTH_FAILURE_MAX: '2', TOKEN_GRANT_RATE_MAX: '2' })
  const secret = await addClient(app, { clientId: 'billing' })
  const right = { authorization: basic('billing', secret) }
  t.same([(await tokenRequest(app, {}, right)).status, (await tokenRequest(app, {}, right)).status, (await tokenRequest(app, {}, right)).status], [200, 200, 429])
  const wrong = { authorization: basic('billing', 'z'.repeat(43)) }
  t.same([(await tokenRequest(app, {}, wrong, '192.0.2.5')).status, (await tokenRequest(app, {}, wrong, '192.0.2.5')).status, (await tokenRequest(app, {}, wrong, '192.0.2.5')).status], [401, 401, 429])
})

t.test('Redis down: the token endpoint answers 503 temporarily_unavailable, never a token or a 500', async (t) => {
  const { redis, env } = await redisMode(t)
  const app = await buildTestApp(t, { ...env, JWT_ISSUER: ISSUER })
  await redisReady(app)
  const secret = await addClient(app, { clientId: 'billing' })
  await redis.stop()
  const response = await tokenRequest(app, {}, { authorization: basic('billing', secret) })
  t.equal(response.status, 503)
  t.equal(response.body.error, 'temporarily_unavailable')
})
