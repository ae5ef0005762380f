import type { FastifyInstance } from 'fastify'
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey as JoseKey } from 'jose'
import t, { type Test } from 'tap'
import { redisKeys } from '../../../src/storage/redis/keys.ts'
import { untilClock } from '../../helper.ts'
import { behaviourTopologies, redisModeOn, type TopologyName } from '../../redis-topologies.ts'
import { addClient, basic, listeningService, postForm } from './helper.ts'

/** The issuer every replica shares, whatever port it listens on: an assertion made for one is for all. */
const ISSUER = 'http://127.0.0.1:3000'
const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer'

/**
 * The service as an attacker meets it: listening, behind a trusted proxy that forwards the
 * caller's address. Embedded mode is one replica; Redis mode two, sharing their limits.
 */
async function replicas (t: Test, mode: 'embedded' | TopologyName, settings: Record<string, string> = {}) {
  const env = { ...(mode === 'embedded' ? {} : (await redisModeOn(mode)).env), JWT_ISSUER: ISSUER, TRUST_PROXY: '127.0.0.1', ...settings }
  const count = mode === 'embedded' ? 1 : 2
  const services = []
  for (let i = 0; i < count; i++) services.push(await listeningService(t, env))
  const secret = await addClient(services[0].app, { clientId: 'billing' })
  const urls = services.map(({ issuer }) => issuer)
  /** The i-th request goes to replica i mod count: the replicas take turns. */
  const at = (i: number) => urls[i % urls.length]
  return { app: services[0].app, redis: services[0].app.redis, secret, at }
}

/** A token request from `clientIp`, forwarded by the trusted proxy. */
async function tokenRequest (url: string, clientIp: string, form: Record<string, string>, headers: Record<string, string> = {}) {
  return await postForm(`${url}/oauth2/token`, { grant_type: 'client_credentials', ...form }, { 'x-forwarded-for': clientIp, ...headers })
}

const wrongSecret = { authorization: basic('billing', 'x'.repeat(43)) }

/** How many times each status occurs. */
function tally (statuses: number[]): Record<number, number> {
  const counts: Record<number, number> = {}
  for (const status of statuses) counts[status] = (counts[status] ?? 0) + 1
  return counts
}

/** Registers the private_key_jwt client `reports`; returns its private key. */
async function assertionKey (app: FastifyInstance) {
  const { privateKey, publicKey } = await generateKeyPair('ES256')
  await addClient(app, { clientId: 'reports', jwks: { keys: [{ ...await exportJWK(publicKey), kid: 'k', alg: 'ES256' }] } })
  return privateKey
}

/** A private_key_jwt assertion of the client `reports`, with the `exp` (and `iat`) a test wants. */
async function assertion (key: JoseKey, claims: { exp: number, iat?: number, jti?: string }) {
  const jwt = new SignJWT({ jti: claims.jti ?? crypto.randomUUID() }).setProtectedHeader({ alg: 'ES256', kid: 'k' })
    .setIssuer('reports').setSubject('reports').setAudience(ISSUER).setExpirationTime(claims.exp)
  if (claims.iat !== undefined) jwt.setIssuedAt(claims.iat)
  return await jwt.sign(key)
}

const assertionForm = (clientAssertion: string) => ({ client_assertion_type: JWT_BEARER, client_assertion: clientAssertion })

// Embedded, and Redis mode with two replicas.
for (const mode of ['embedded', ...behaviourTopologies()] as const) {
  t.test(`${mode}: strangers' wrong secrets spend none of a client's grant budget, even all at once`, async (t) => {
    const { secret, at } = await replicas(t, mode, { TOKEN_GRANT_RATE_MAX: '10' })
    const right = { authorization: basic('billing', secret) }
    for (let round = 0; round < 5; round++) {
      const attack = Array.from({ length: 120 }, async (_, i) => (await tokenRequest(at(i), '203.0.113.9', {}, wrongSecret)).status)
      const [real, ...strangers] = await Promise.all([tokenRequest(at(round), '198.51.100.7', {}, right), ...attack])
      t.equal(real.status, 200, `round ${round}: the real client is granted a token`, { body: real.body })
      t.notOk(strangers.includes(200), `round ${round}: no stranger is`)
    }
  })

  t.test(`${mode}: failed client authentications count per client address, as the login limit counts them`, async (t) => {
    const { at } = await replicas(t, mode, { CLIENT_AUTH_FAILURE_MAX: '20' })
    const statuses = async (addresses: string[]) => {
      const answers: number[] = []
      for (const [i, address] of addresses.entries()) answers.push((await tokenRequest(at(i), address, {}, wrongSecret)).status)
      return tally(answers)
    }
    // One host owns the whole /64 (RATE_LIMIT_IPV6_PREFIX): a fresh address in it is no fresh budget.
    const oneNetwork = Array.from({ length: 60 }, (_, i) => `2001:db8:1:2::${(i + 1).toString(16)}`)
    t.same(await statuses(oneNetwork), { 401: 20, 429: 40 }, '60 addresses of one /64')
    t.same(await statuses(['2001:db8:1:3::1']), { 401: 1 }, 'the next /64 is another client')
    // An IPv4-mapped IPv6 address is its IPv4 address.
    const oneAddress = Array.from({ length: 40 }, (_, i) => i % 2 === 0 ? '192.0.2.7' : '::ffff:192.0.2.7')
    t.same(await statuses(oneAddress), { 401: 20, 429: 20 }, '192.0.2.7 written two ways')
  })

  t.test(`${mode}: concurrent wrong secrets from one address get the failure limit's 20 through, no more`, async (t) => {
    const { app, secret, at } = await replicas(t, mode, { CLIENT_AUTH_FAILURE_MAX: '20' })
    const attack = await Promise.all(Array.from({ length: 150 }, async (_, i) => (await tokenRequest(at(i), '203.0.113.50', {}, wrongSecret)).status))
    t.same(tally(attack), { 401: 20, 429: 130 }, '150 at once')
    // An assertion takes longer to check than a secret: more requests are in flight together.
    const forged = assertionForm(await assertion((await generateKeyPair('ES256')).privateKey, { exp: Date.now() / 1000 + 60 }))
    await assertionKey(app)
    const forgeries = await Promise.all(Array.from({ length: 150 }, async (_, i) => (await tokenRequest(at(i), '203.0.113.51', forged)).status))
    t.same(tally(forgeries), { 401: 20, 429: 130 }, '150 forged assertions at once')
    const right = { authorization: basic('billing', secret) }
    t.equal((await tokenRequest(at(0), '203.0.113.50', {}, right)).status, 429, 'the address is refused even with the right secret')
    t.equal((await tokenRequest(at(1), '203.0.113.50', { grant_type: 'password' }, right)).status, 429, 'and a request that would fail after the proof does not tell it was right')
    t.equal((await postForm(`${at(0)}/oauth2/introspect`, { token: 'x' }, { ...right, 'x-forwarded-for': '203.0.113.50' })).status, 429, 'nor does introspection')

    // The real client, however often it authenticates, never fills its own address's failure budget.
    const concurrent = await Promise.all(Array.from({ length: 60 }, async (_, i) => (await tokenRequest(at(i), '198.51.100.7', {}, right)).status))
    t.same(tally(concurrent), { 200: 60 }, '60 at once')
    const sequential: number[] = []
    for (let i = 0; i < 30; i++) sequential.push((await tokenRequest(at(i), '198.51.100.7', {}, right)).status)
    t.same(tally(sequential), { 200: 30 })
    const introspected = await postForm(`${at(1)}/oauth2/introspect`, { token: 'x' }, { ...right, 'x-forwarded-for': '198.51.100.7' })
    t.equal(introspected.status, 200, 'introspection too')
    const failures: number[] = []
    for (let i = 0; i < 21; i++) failures.push((await tokenRequest(at(i), '198.51.100.7', {}, wrongSecret)).status)
    t.same(tally(failures), { 401: 20, 429: 1 }, 'then its failures still have their whole budget, and only that')
  })

  t.test(`${mode}: a right secret among a burst of wrong ones is told apart only within the failure limit`, async (t) => {
    const { secret, at } = await replicas(t, mode, { CLIENT_AUTH_FAILURE_MAX: '20' })
    // The right one sent last: most often decided after the 20th failure, so a 429 like the rest past it.
    const burst = [...Array(149).fill(wrongSecret), { authorization: basic('billing', secret) }]
    const statuses = await Promise.all(burst.map(async (headers, i) => (await tokenRequest(at(i), '203.0.113.60', {}, headers)).status))
    const { 200: granted = 0, 401: failed = 0 } = tally(statuses)
    t.ok(failed <= 20, `${failed} x 401`)
    t.ok(granted + failed <= 21, `the right secret is a 200 (${granted}) only if decided before the 20th failure`)
    t.same(Object.keys(tally(statuses)).filter((status) => !['200', '401', '429'].includes(status)), [], 'every other answer a 429')
  })

  t.test(`${mode}: more correct grants at once from one address than the failure limit are neither held back nor refused`, async (t) => {
    const { app, secret, at, redis } = await replicas(t, mode, { CLIENT_AUTH_FAILURE_MAX: '20' })
    const right = { authorization: basic('billing', secret) }
    const startedAt = Date.now()
    const statuses = await Promise.all(Array.from({ length: 40 }, async (_, i) => (await tokenRequest(at(i), '198.51.100.8', {}, right)).status))
    const elapsedMs = Date.now() - startedAt
    t.same(tally(statuses), { 200: 40 })
    t.ok(elapsedMs < 3000, `in ${elapsedMs} ms: none waited for others to end`)
    if (redis !== undefined) {
      t.equal(await redis.exists(redisKeys(app.config.REDIS_KEY_PREFIX).clientAuthFailures('198.51.100.8')), 0, 'a success keeps nothing about its address')
    }
  })

  t.test(`${mode}: an assertion is single use for as long as it can be accepted, whatever fraction its exp has`, async (t) => {
    const { app, at } = await replicas(t, mode)
    const key = await assertionKey(app)
    // exp is 29.95 s ago, just after a whole second: the verifier reads its clock to the whole
    // second, so it accepts the assertion (exp + its 30 s tolerance) until the next one.
    const second = Math.ceil(Date.now() / 1000)
    await untilClock(second * 1000 + 10)
    const exp = second - 29.95
    const form = assertionForm(await assertion(key, { exp }))
    t.equal((await tokenRequest(at(0), '192.0.2.1', form)).status, 200, 'first use, inside the 30 s clock tolerance')
    const replayed = await tokenRequest(at(1), '192.0.2.2', form)
    t.equal(replayed.status, 401)
    t.equal(replayed.body.error_description, 'Client assertion has already been used (jti)')
    // Past exp + the tolerance, when the replay record used to expire, and well before the next second.
    await untilClock((exp + 30) * 1000 + 100)
    const later = await tokenRequest(at(1), '192.0.2.3', form)
    t.equal(later.status, 401, 'a replay after exp + the tolerance')
    t.equal(later.body.error_description, 'Client assertion has already been used (jti)')

    const fractional = await tokenRequest(at(0), '192.0.2.4', assertionForm(await assertion(key, { exp: Date.now() / 1000 + 60.1234 })))
    t.equal(fractional.status, 200, 'an exp with a fraction of a millisecond')
  })

  t.test(`${mode}: assertions live as long as the widely used libraries make them, and are single use all that time`, async (t) => {
    const { app, at, redis } = await replicas(t, mode)
    const key = await assertionKey(app)
    // authlib's private_key_jwt signs exp = iat + 3600, as Okta allows.
    const iat = Math.floor(Date.now() / 1000)
    const jti = crypto.randomUUID()
    const form = assertionForm(await assertion(key, { iat, exp: iat + 3600, jti }))
    t.equal((await tokenRequest(at(0), '192.0.2.1', form)).status, 200, 'an hour of life, as authlib makes it')
    t.equal((await tokenRequest(at(1), '192.0.2.2', form)).status, 401, 'and used once')
    if (redis !== undefined) {
      const replayRecord = redisKeys(app.config.REDIS_KEY_PREFIX).client('reports').assertionId(jti)
      t.ok(await redis.pttl(replayRecord) > 3630_000, 'its replay record outlives exp and the clock tolerance')
    }
    const tooLong = await tokenRequest(at(0), '192.0.2.1', assertionForm(await assertion(key, { iat, exp: iat + 3600 + 60 })))
    t.equal(tooLong.status, 401)
    t.equal(tooLong.body.error_description, 'Client assertion expires more than 3600 seconds ahead')
  })
}

t.test('CLIENT_ASSERTION_MAX_LIFETIME_SECONDS sets the cap', async (t) => {
  const { app, at } = await replicas(t, 'embedded', { CLIENT_ASSERTION_MAX_LIFETIME_SECONDS: '300' })
  const key = await assertionKey(app)
  const now = Math.floor(Date.now() / 1000)
  t.equal((await tokenRequest(at(0), '192.0.2.1', assertionForm(await assertion(key, { exp: now + 300 })))).status, 200)
  const tooLong = await tokenRequest(at(0), '192.0.2.1', assertionForm(await assertion(key, { iat: now, exp: now + 3600 })))
  t.equal(tooLong.status, 401)
  t.equal(tooLong.body.error_description, 'Client assertion expires more than 300 seconds ahead')
})
