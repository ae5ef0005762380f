import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'

/** How long consumers may cache the key set: well under the rotation procedure's waiting step. */
export const JWKS_MAX_AGE_SECONDS = 300

const PublicJwk = Type.Object({
  kty: Type.String(),
  kid: Type.String(),
  alg: Type.String(),
  use: Type.Literal('sig'),
  crv: Type.Optional(Type.String()),
  x: Type.Optional(Type.String()),
  y: Type.Optional(Type.String()),
  n: Type.Optional(Type.String()),
  e: Type.Optional(Type.String())
}, { additionalProperties: false })

const JwksResponse = Type.Object({ keys: Type.Array(PublicJwk) }, { $id: 'JwksResponse', additionalProperties: false })

/**
 * The public keys that may still verify a live token: the signing key and the verify-only keys.
 * The response schema lists the public JWK members only, so a private member could never be sent.
 */
const jwksRoute: FastifyPluginAsyncTypebox = async (app) => {
  app.addSchema(JwksResponse)
  const jwks = { keys: [...app.accessTokens.keyRing.verificationKeys.values()].map((key) => key.jwk) }

  app.get('/.well-known/jwks.json', {
    schema: {
      operationId: 'jwks',
      tags: ['auth'],
      summary: 'JSON Web Key Set for verifying tokens',
      description: 'The public keys that may verify a live token: the signing key and the keys kept for verification during a rotation. Consumers select the key by the token header `kid` and may cache the set for the Cache-Control max-age.',
      security: [],
      response: { 200: Type.Ref(JwksResponse, { description: 'The public keys, never a private member' }) }
    }
  }, async (_request, reply) => {
    void reply.header('cache-control', `public, max-age=${JWKS_MAX_AGE_SECONDS}`)
    return jwks
  })
}

export default jwksRoute
