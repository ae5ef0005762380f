import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import { LogoutResponse, MeResponse, dependencyErrorResponses, errorResponse } from '../../schemas/auth.ts'
import { envelope } from '../../http/envelope.ts'
import type { UserTokenClaims } from '../../tokens/access-tokens.ts'

const bearerRouteResponses = {
  401: errorResponse('Missing, malformed, expired, not yet valid, revoked or untrusted token; see WWW-Authenticate'),
  ...dependencyErrorResponses
}

/** What both routes tell about the presented token. */
const tokenHolder = (token: UserTokenClaims) => (generatedAt: number) => ({
  username: token.sub,
  expireDate: token.exp * 1000,
  remainingTime: token.exp * 1000 - generatedAt
})

/** Routes for the holder of a token: who am I, and revoke this token. */
const sessionRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.get('/api/auth/me', {
    onRequest: app.authenticate,
    schema: {
      operationId: 'me',
      tags: ['auth'],
      summary: 'Who the bearer token belongs to',
      description: 'Verifies the bearer token (signature, issuer, audience, expiry, revocation) and returns its username and how long it stays valid.',
      security: [{ bearerAuth: [] }],
      response: { 200: Type.Ref(MeResponse), ...bearerRouteResponses }
    }
  }, async (request, reply) => envelope(reply, 'Authenticated', tokenHolder(request.token!)))

  app.post('/api/auth/logout', {
    onRequest: app.authenticate,
    schema: {
      operationId: 'logout',
      tags: ['auth'],
      summary: 'Revoke the bearer token on every replica until it expires',
      description: 'Adds the bearer token to the revocation list shared by every replica, kept until the token expires; from then on every route refuses it with 401.',
      security: [{ bearerAuth: [] }],
      response: { 200: Type.Ref(LogoutResponse), ...bearerRouteResponses }
    }
  }, async (request, reply) => {
    const token = request.token!
    await app.accessTokens.revoke(token)
    return envelope(reply, 'Token revoked', tokenHolder(token))
  })
}

export default sessionRoutes
