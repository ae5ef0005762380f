import t, { type Test } from 'tap'
import { behaviourTopologies, redisModeOn, type TopologyName } from '../../redis-topologies.js'
import { addClient, basic, listeningService, postForm } from './helper.js'

/** The issuer every replica shares, whatever port it listens on: an assertion made for one is for all. */
const ISSUER = 'http://127.0.0.1:3000'

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
}
