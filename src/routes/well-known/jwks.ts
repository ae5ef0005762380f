import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import { createHash } from 'node:crypto'
import type { KeyRing, PublicJwk } from '../../tokens/keys.ts'

const PublicJwkSchema = Type.Object({
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

const JwksResponse = Type.Object({ keys: Type.Array(PublicJwkSchema) }, { $id: 'JwksResponse', additionalProperties: false })

/** Whether an If-None-Match header names the entity tag (RFC 9110 §13.1.2: weak comparison, or `*`). */
function matches (ifNoneMatch: string | undefined, etag: string): boolean {
  if (ifNoneMatch === undefined) return false
  return ifNoneMatch.trim() === '*' || ifNoneMatch.split(',').some((tag) => tag.trim().replace(/^W\//, '') === etag)
}

/**
 * The public keys that may still verify a live token: with key files the signing key and the
 * verify-only keys; with managed keys the next, current and retired keys. The response schema
 * lists the public JWK members only, so a private member could never be sent. Consumers cache it
 * for the max-age, and revalidate it with its ETag (304 while the keys are the same).
 */
const jwksRoute: FastifyPluginAsyncTypebox = async (app) => {
  app.addSchema(JwksResponse)
  // Built once per key ring: a new ring (a key added, switched or removed) is a new document and ETag.
  const documents = new WeakMap<KeyRing, { jwks: { keys: PublicJwk[] }, etag: string }>()
  const documentOf = (ring: KeyRing) => {
    let document = documents.get(ring)
    if (document === undefined) {
      const jwks = { keys: [...ring.verificationKeys.values()].map((key) => key.jwk) }
      document = { jwks, etag: `"${createHash('sha256').update(JSON.stringify(jwks)).digest('base64url')}"` }
      documents.set(ring, document)
    }
    return document
  }

  app.get('/.well-known/jwks.json', {
    schema: {
      operationId: 'jwks',
      tags: ['auth'],
      summary: 'JSON Web Key Set for verifying tokens',
      description: 'The public keys that may verify a live token: the signing key, and the keys published before they sign or kept after, until their tokens have expired. ' +
        'Consumers select the key by the token header `kid` and may cache the set for the Cache-Control max-age, then revalidate it with its ETag (If-None-Match).',
      security: [],
      response: {
        200: Type.Ref(JwksResponse, { description: 'The public keys, never a private member' }),
        304: Type.Null({ description: 'Not modified: If-None-Match names the ETag of the keys published now' })
      }
    }
  }, async (request, reply) => {
    const { jwks, etag } = documentOf(app.signingKeys.keyRing)
    void reply.header('cache-control', `public, max-age=${app.signingKeys.jwksMaxAgeSeconds}`).header('etag', etag)
    if (matches(request.headers['if-none-match'], etag)) return await reply.code(304).send(null)
    return jwks
  })
}

export default jwksRoute
