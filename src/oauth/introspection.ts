import type { Client } from '../clients/client.ts'
import { InvalidTokenError, type AccessTokens, type ClientTokenClaims } from '../tokens/access-tokens.ts'

export type Introspection = { active: false } | ({ active: true, token_type: 'Bearer' } & Partial<ClientTokenClaims> & { username?: string })

const INACTIVE = { active: false } as const

/**
 * Whether `caller` may learn about a token (RFC 7662 §4): one of its own, or one for a resource it
 * serves (JWT_AUDIENCE for login tokens).
 */
export function mayIntrospect (caller: Client, { aud, client_id: clientId }: { aud: string | string[], client_id?: string }): boolean {
  // aud may also be a list (RFC 7519 §4.1.3): a token for several resources is meant for each.
  return clientId === caller.clientId || [aud].flat().some((resource) => caller.serves?.includes(resource) === true)
}

/**
 * RFC 7662: what a token is, if it is one of ours, live, and the caller's to know. A client's token
 * is active while it verifies (not revoked, its client still the one it was issued to); a login
 * token while the login routes would accept it. Anything else (expired, revoked, malformed,
 * foreign, neither the caller's own nor for a resource it serves) is `{ active: false }`; an
 * outage is an error, never an inactive answer.
 */
export async function introspect (accessTokens: AccessTokens, caller: Client, token: string): Promise<Introspection> {
  try {
    if (accessTokens.claimedKind(token) === 'client') {
      const claims = await accessTokens.verify(token, 'client')
      return mayIntrospect(caller, claims) ? { active: true, token_type: 'Bearer', ...claims } : INACTIVE
    }
    const { iss, sub, aud, iat, exp, jti } = await accessTokens.verify(token, 'user')
    return mayIntrospect(caller, { aud }) ? { active: true, token_type: 'Bearer', iss, sub, aud, iat, exp, jti, username: sub } : INACTIVE
  } catch (error) {
    if (error instanceof InvalidTokenError) return INACTIVE
    throw error
  }
}

/**
 * RFC 7009: a client revokes one of its own access tokens on every replica until it expires. A
 * token that is not the caller's, not ours, or already dead is left alone, and the answer is the
 * same, so nobody learns anything about tokens they do not hold.
 */
export async function revokeOwnToken (accessTokens: AccessTokens, clientId: string, token: string): Promise<void> {
  let claims: ClientTokenClaims
  try {
    claims = await accessTokens.verify(token, 'client')
  } catch (error) {
    if (error instanceof InvalidTokenError) return
    throw error
  }
  if (claims.client_id === clientId) await accessTokens.revoke(claims)
}
