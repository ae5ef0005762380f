// The least a client-credentials grant can cost on this machine, for bench/client-credentials.mjs
// to measure beside the service: a Fastify route that reads one client record from Redis (ioredis,
// auto-pipelined as in the service), or without REDIS_URL from memory as embedded mode keeps its
// clients, and signs one EdDSA access token with node:crypto directly,
// the least a signature costs (bench/jwt-libraries.mjs holds the service's fast-jwt to it). No
// client authentication, no limits, no audit line, no metrics: it is not a token endpoint, only
// the floor under one, so "grants / floor" shows what the service's own work costs and
// "floor / bare" what no token endpoint on this machine can avoid.
// With GRANT_FLOOR_LIMITS=1 it also counts each grant as the service does, and nothing else: the
// service's own GrantLimit on the service's own store (in Redis beside the client, or in memory),
// at the service's limits (TOKEN_GRANT_RATE_MAX and the rest read as the service reads them), so
// "floor with the limits / floor" is what the limits alone cost, the most "grants / floor" can be
// with every limit on.
// GET /health/live only tells the bench that it is listening. PORT, HOST and REDIS_URL (optional) from the environment.
import { generateKeyPairSync, randomUUID, sign } from 'node:crypto'
import Fastify from 'fastify'
import { Redis } from 'ioredis'
import { loadConfig } from '../dist/config.js'
import { clientAddress } from '../dist/http/client-address.js'
import { GrantLimit, tokenEndpointLimits } from '../dist/oauth/client-credentials-grant.js'
import { openStores } from '../dist/storage/stores.js'

const CLIENT_KEY = 'grant-floor:client'
const CLIENT = { clientId: 'bench-client', scope: 'orders:read', audience: 'https://orders.internal' }
const redis = process.env.REDIS_URL === undefined ? undefined : new Redis(process.env.REDIS_URL, { enableAutoPipelining: true })
await redis?.set(CLIENT_KEY, JSON.stringify(CLIENT))
const readClient = redis === undefined ? async () => CLIENT : async () => JSON.parse(await redis.get(CLIENT_KEY))
const countGrant = process.env.GRANT_FLOOR_LIMITS === '1' ? grantCounter() : async () => {}
const { privateKey } = generateKeyPairSync('ed25519')
const base64url = (value) => Buffer.from(JSON.stringify(value)).toString('base64url')
const header = base64url({ alg: 'EdDSA', typ: 'at+jwt', kid: 'floor' })

const app = Fastify()
app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_request, body, done) => {
  done(null, Object.fromEntries(new URLSearchParams(body)))
})
app.post('/oauth2/token', async (request, reply) => {
  const client = await readClient()
  await countGrant(client, request)
  const now = Math.floor(Date.now() / 1000)
  const claims = { iss: `http://${process.env.HOST}`, sub: client.clientId, client_id: client.clientId, aud: client.audience, scope: client.scope, iat: now, exp: now + 900, jti: randomUUID() }
  const signingInput = `${header}.${base64url(claims)}`
  reply.header('cache-control', 'no-store')
  return { access_token: `${signingInput}.${sign(null, Buffer.from(signingInput), privateKey).toString('base64url')}`, token_type: 'Bearer', expires_in: 900, scope: client.scope }
})
app.get('/health/live', async () => ({ status: 'ok' }))

/** The service's grant limit as its token route applies it (plugins/oauth.ts), on the store openStores gives it. */
function grantCounter () {
  const config = loadConfig({ ...process.env, DATA_DIR: process.env.DATA_DIR ?? '.' })
  const { failures, grants } = tokenEndpointLimits(config)
  const limit = new GrantLimit(openStores(config, redis).transient.tokenEndpoint, grants, failures)
  return (client, request) => limit.admit(client.clientId, clientAddress(request.ip, config.RATE_LIMIT_IPV6_PREFIX))
}
await app.listen({ port: Number(process.env.PORT), host: process.env.HOST })
