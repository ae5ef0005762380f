import { createPrivateKey, createPublicKey, sign, verify, type KeyObject } from 'node:crypto'
import type { JwtAlgorithm, KeyRing } from './keys.js'

/** RFC 9068 §2.1: the media type of a JWT access token, in its `typ` header. */
export const ACCESS_TOKEN_TYPE = 'at+jwt'

/** The claims of an RFC 9068 access token issued to a client. */
export interface AccessTokenClaims {
  iss: string
  sub: string
  client_id: string
  aud: string
  scope: string
  iat: number
  exp: number
  jti: string
}

/** node:crypto's digest and signature encoding for each JWS algorithm the key ring signs with. */
const SIGNATURE: Record<JwtAlgorithm, { digest: string | null, dsaEncoding?: 'ieee-p1363' }> = {
  EdDSA: { digest: null },
  ES256: { digest: 'sha256', dsaEncoding: 'ieee-p1363' },
  RS256: { digest: 'sha256' }
}

const base64url = (value: object): string => Buffer.from(JSON.stringify(value)).toString('base64url')

/**
 * Signs access tokens with the key ring's signing key. The header and the key object are built
 * once: a token grant then costs one JSON serialisation and one signature.
 */
export function accessTokenSigner (keyRing: KeyRing): (claims: AccessTokenClaims) => string {
  const { algorithm, kid, privateKeyPem } = keyRing.signingKey
  const header = base64url({ alg: algorithm, typ: ACCESS_TOKEN_TYPE, kid })
  const { digest, dsaEncoding } = SIGNATURE[algorithm]
  const key = createPrivateKey(privateKeyPem)
  return (claims) => {
    const signingInput = `${header}.${base64url(claims)}`
    return `${signingInput}.${sign(digest, Buffer.from(signingInput), { key, dsaEncoding }).toString('base64url')}`
  }
}

export class AccessTokenError extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'AccessTokenError'
  }
}

/**
 * Checks an access token's signature with the key its `kid` names, allowing only that key's
 * algorithm and the at+jwt type, and returns its unchecked claims. `jku`, `jwk` and `x5u` headers
 * are never followed. Claims (issuer, lifetime) are the caller's to check.
 */
export function accessTokenVerifier (keyRing: KeyRing): (token: string) => Record<string, unknown> {
  const publicKeys = new Map<string, { algorithm: JwtAlgorithm, key: KeyObject }>()
  for (const [kid, { algorithm, publicKeyPem }] of keyRing.verificationKeys) publicKeys.set(kid, { algorithm, key: createPublicKey(publicKeyPem) })
  return (token) => {
    const parts = token.split('.')
    if (parts.length !== 3) throw new AccessTokenError('Token is not a signed JWT')
    let header: { alg?: unknown, typ?: unknown, kid?: unknown }
    let claims: unknown
    try {
      header = JSON.parse(Buffer.from(parts[0], 'base64url').toString())
      claims = JSON.parse(Buffer.from(parts[1], 'base64url').toString())
    } catch {
      throw new AccessTokenError('Token is malformed')
    }
    const key = typeof header?.kid === 'string' ? publicKeys.get(header.kid) : undefined
    if (key === undefined || header.alg !== key.algorithm) throw new AccessTokenError('Token was not signed by a known key')
    if (typeof header.typ !== 'string' || header.typ.toLowerCase().replace(/^application\//, '') !== ACCESS_TOKEN_TYPE) throw new AccessTokenError('Token is not an at+jwt access token')
    const { digest, dsaEncoding } = SIGNATURE[key.algorithm]
    if (!verify(digest, Buffer.from(`${parts[0]}.${parts[1]}`), { key: key.key, dsaEncoding }, Buffer.from(parts[2], 'base64url'))) {
      throw new AccessTokenError('Token signature is invalid')
    }
    if (typeof claims !== 'object' || claims === null || Array.isArray(claims)) throw new AccessTokenError('Token claims are not an object')
    return claims as Record<string, unknown>
  }
}
