import fastifyJwt from '@fastify/jwt'
import type { FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { bearerChallenge, bearerToken } from '../http/bearer.js'
import { ACCESS_TOKEN_TYPE, AccessTokens, InvalidTokenError, type UserTokenClaims } from '../tokens/access-tokens.js'
import type { KeyRing } from '../tokens/keys.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** Every access token: users' login tokens and OAuth clients' tokens, one key ring, one revocation list. */
    accessTokens: AccessTokens
    /** onRequest hook for routes that need a login token: sets request.token or answers 401 with the RFC 6750 challenge. */
    authenticate (request: FastifyRequest): Promise<void>
  }
  interface FastifyRequest {
    token: UserTokenClaims | null
  }
}

/** The access tokens with the key ring, checked against the users, clients and revoked token ids of app.stores (in Redis in Redis mode, shared by replicas). */
export default fp<{ keyRing: KeyRing }>(async function tokensPlugin (app, { keyRing }) {
  const { JWT_ISSUER: issuer, JWT_AUDIENCE: userAudience, TOKEN_TTL_SECONDS: userTokenTtlSeconds, TOKEN_EXCHANGE_MAX_DEPTH: exchangeMaxDepth } = app.config
  // @fastify/jwt holds the signer, built once with the signing key (fast-jwt underneath, as the verifiers).
  const { algorithm, kid, privateKeyPem, publicKeyPem } = keyRing.signingKey
  await app.register(fastifyJwt, {
    secret: { private: privateKeyPem, public: publicKeyPem },
    sign: { algorithm, kid, header: { alg: algorithm, typ: ACCESS_TOKEN_TYPE } }
  })
  const sign = (claims: object): string => app.jwt.sign(claims)
  const accessTokens = new AccessTokens(keyRing, sign, { issuer, userAudience, userTokenTtlSeconds, exchangeMaxDepth }, app.stores.durable)

  app.decorate('accessTokens', accessTokens)
  app.decorateRequest('token', null)
  app.decorate('authenticate', async function authenticate (request: FastifyRequest) {
    const token = bearerToken(request)
    try {
      request.token = await accessTokens.verify(token, 'user')
    } catch (error) {
      throw error instanceof InvalidTokenError ? bearerChallenge(error.message, 'invalid_token') : error
    }
  })
}, { name: 'tokens', dependencies: ['config', 'storage', 'errors', 'users'] })
