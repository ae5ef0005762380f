import type { FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { bearerChallenge, bearerToken } from '../http/bearer.ts'
import { AccessTokens, InvalidTokenError, type UserTokenClaims } from '../tokens/access-tokens.ts'

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

/**
 * The access tokens on the signing keys, checked against the users, clients and revoked token ids
 * of app.stores (in Redis in Redis mode, shared by replicas). Tokens are signed with fast-jwt's
 * createSigner, one signer per signing key as the keys rotate (@fastify/jwt, which wraps it,
 * holds one key for good).
 */
export default fp(async function tokensPlugin (app) {
  const { JWT_ISSUER: issuer, JWT_AUDIENCE: userAudience, TOKEN_TTL_SECONDS: userTokenTtlSeconds, TOKEN_EXCHANGE_MAX_DEPTH: exchangeMaxDepth } = app.config
  const { unknownKeyVerifications } = app.metrics
  const accessTokens = new AccessTokens(app.signingKeys, { issuer, userAudience, userTokenTtlSeconds, exchangeMaxDepth }, app.stores.durable, () => unknownKeyVerifications.inc())

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
}, { name: 'tokens', dependencies: ['config', 'metrics', 'storage', 'errors', 'users', 'signing-keys'] })
