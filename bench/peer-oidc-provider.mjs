// The peer for bench/client-credentials.mjs to measure beside the service: panva's oidc-provider
// (the OpenID-certified Node.js server) set up as a client-credentials server as close to this
// service as it allows: client_secret_basic, RFC 9068-style JWT access tokens signed with EdDSA
// (resource indicators, the audience and scope of the one resource server), TTL 900 s, one client.
// The request needs no `resource`: defaultResource names the client's audience, as the service
// takes it from the client's registration, so both servers get the same body.
// The client is stored through its adapter and read on every grant, so the two variants differ
// only in where the adapter keeps it: the provider's own in-memory adapter, or with REDIS_URL
// Redis behind a small adapter over ioredis. (Configured in `clients` instead, it measured the
// same as in the in-memory adapter.) It stores nothing per grant.
// GET /health/live only tells the bench that it is listening. PORT, HOST, CLIENT_ID,
// CLIENT_SECRET and REDIS_URL (optional) from the environment.
import { generateKeyPairSync } from 'node:crypto'
import { Redis } from 'ioredis'
import Provider from 'oidc-provider'
// The provider's own in-memory adapter, as it makes one when given none, but with its store at hand.
import { createMemoryAdapter } from 'oidc-provider/lib/adapters/memory_adapter.js'

const { CLIENT_ID, CLIENT_SECRET, HOST, PORT, REDIS_URL } = process.env
const AUDIENCE = 'https://orders.internal'
const SCOPES = 'orders:read orders:write'
const TTL_SECONDS = 900

const client = {
  client_id: CLIENT_ID,
  client_secret: CLIENT_SECRET,
  grant_types: ['client_credentials'],
  response_types: [],
  redirect_uris: [],
  token_endpoint_auth_method: 'client_secret_basic',
  // Its only key is Ed25519: the default (RS256) would not validate.
  id_token_signed_response_alg: 'EdDSA',
  scope: SCOPES
}

const redis = REDIS_URL === undefined ? undefined : new Redis(REDIS_URL, { enableAutoPipelining: true })

/** oidc-provider's adapter interface over Redis: each record one JSON string, expiring with it. */
class RedisAdapter {
  constructor (model) {
    this.model = model
  }

  key (id) {
    return `peer:${this.model}:${id}`
  }

  async upsert (id, payload, expiresIn) {
    if (expiresIn) await redis.set(this.key(id), JSON.stringify(payload), 'EX', expiresIn)
    else await redis.set(this.key(id), JSON.stringify(payload))
  }

  async find (id) {
    const value = await redis.get(this.key(id))
    return value === null ? undefined : JSON.parse(value)
  }

  async findByUid () { return undefined }
  async findByUserCode () { return undefined }

  async consume (id) {
    const payload = await this.find(id)
    if (payload !== undefined) await this.upsert(id, { ...payload, consumed: Math.floor(Date.now() / 1000) })
  }

  async destroy (id) {
    await redis.del(this.key(id))
  }

  async revokeByGrantId () {}
}

const adapter = redis === undefined ? createMemoryAdapter() : (model) => new RedisAdapter(model)
await adapter('Client').upsert(CLIENT_ID, client)

const { privateKey } = generateKeyPairSync('ed25519')
const provider = new Provider(`http://${HOST}`, {
  adapter,
  // Its token endpoint at the service's path, so both get the very same request.
  routes: { token: '/oauth2/token' },
  scopes: SCOPES.split(' '),
  ttl: { ClientCredentials: TTL_SECONDS },
  jwks: { keys: [{ ...privateKey.export({ format: 'jwk' }), kid: 'peer', use: 'sig', alg: 'EdDSA' }] },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => AUDIENCE,
      getResourceServerInfo: () => ({ scope: SCOPES, audience: AUDIENCE, accessTokenTTL: TTL_SECONDS, accessTokenFormat: 'jwt', jwt: { sign: { alg: 'EdDSA' } } })
    }
  }
})
provider.use(async (ctx, next) => {
  if (ctx.method === 'GET' && ctx.path === '/health/live') ctx.body = { status: 'ok' }
  else await next()
})
provider.listen(Number(PORT), HOST)
