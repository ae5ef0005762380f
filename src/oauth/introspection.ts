import { decodeJwt } from 'jose'
import type { FastifyInstance } from 'fastify'
import { HttpError } from '../plugins/errors.js'
import { AccessTokenError, type AccessTokenClaims } from '../tokens/jwt-access-tokens.js'

export type Introspection = { active: false } | ({ active: true, token_type: 'Bearer' } & Partial<AccessTokenClaims> & { username?: string })

const INACTIVE = { active: false } as const

/** Whether an error means "this token does not verify", as opposed to an outage that must surface as one. */
function isRejection (error: unknown): boolean {
  return error instanceof AccessTokenError || (error instanceof HttpError && error.statusCode === 401)
}

/**
 * RFC 7662: what a token is, if it is one of ours and live. A client's token is active while it
 * verifies, is not revoked and its client still exists; a login token while the login routes
 * would accept it. Anything else (expired, revoked, malformed, foreign) is `{ active: false }`;
 * an outage is an error, never an inactive answer.
 */
export async function introspect (app: Pick<FastifyInstance, 'tokens' | 'accessTokens' | 'clients'>, token: string): Promise<Introspection> {
  let clientId: unknown
  try {
    clientId = decodeJwt(token).client_id
  } catch {
    return INACTIVE
  }
  try {
    if (clientId !== undefined) {
      const claims = await app.accessTokens.verify(token)
      if (await app.clients.find(claims.client_id) === undefined) return INACTIVE
      return { active: true, token_type: 'Bearer', ...claims }
    }
    const { iss, sub, aud, iat, exp, jti } = await app.tokens.verify(token)
    return { active: true, token_type: 'Bearer', iss, sub, aud, iat, exp, jti, username: sub }
  } catch (error) {
    if (isRejection(error)) return INACTIVE
    throw error
  }
}

/**
 * RFC 7009: a client revokes one of its own access tokens on every replica until it expires. A
 * token that is not the caller's, not ours, or already dead is left alone, and the answer is the
 * same, so nobody learns anything about tokens they do not hold.
 */
export async function revokeOwnToken (app: Pick<FastifyInstance, 'tokens' | 'accessTokens'>, clientId: string, token: string): Promise<void> {
  let claims: AccessTokenClaims
  try {
    claims = await app.accessTokens.verify(token)
  } catch (error) {
    if (isRejection(error)) return
    throw error
  }
  if (claims.client_id === clientId) await app.tokens.revoke(claims)
}
