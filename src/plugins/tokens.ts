import { randomUUID } from 'node:crypto'
import fastifyJwt from '@fastify/jwt'
import type { FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { AccessTokenError, accessTokenSigner, accessTokenVerifier, type AccessTokenClaims } from '../tokens/jwt-access-tokens.js'
import type { KeyRing } from '../tokens/keys.js'
import { acceptsTokenIssuedAt } from '../users/repository.js'
import { LocalRevocationList, RedisRevocationList } from '../tokens/revocations.js'
import { HttpError } from './errors.js'

export interface IssuedToken {
  accessToken: string
  /** When the token stops verifying, in Unix ms (its `exp` claim times 1000). */
  expireDate: number
}

/** The claims of a token that verified. */
export interface TokenClaims {
  sub: string
  jti: string
  iat: number
  exp: number
  iss: string
  aud: string
}

/** What a client-credentials grant decided: who, for which resource, with which scopes, for how long. */
export interface AccessTokenGrant {
  clientId: string
  audience: string
  scope: string
  ttlSeconds: number
}

export interface IssuedAccessToken {
  accessToken: string
  claims: AccessTokenClaims
}

declare module 'fastify' {
  interface FastifyInstance {
    /** OAuth clients' RFC 9068 access tokens: the same key ring signs them, the same list revokes them. */
    accessTokens: {
      /** Signs a token for a grant (issuer, times and jti added here). */
      issue (grant: AccessTokenGrant): IssuedAccessToken
      /** Verifies key, at+jwt type, issuer, lifetime and revocation; throws AccessTokenError. */
      verify (token: string): Promise<AccessTokenClaims>
    }
  }
}

declare module 'fastify' {
  interface FastifyInstance {
    tokens: {
      keyRing: KeyRing
      issue (username: string): IssuedToken
      /**
       * Verifies signature, algorithm, `typ`, issuer, audience, lifetime, revocation and that the
       * account still accepts it (checkAccount); throws a 401 HttpError.
       */
      verify (token: string): Promise<TokenClaims>
      /**
       * Tokens end with the account: throws a 401 HttpError when the user the token was issued to
       * is gone, disabled, or changed password after it was issued. verify() calls it; so can any
       * other route that accepts user tokens (token introspection).
       */
      checkAccount (claims: Pick<TokenClaims, 'sub' | 'iat'>): Promise<void>
      revoke (claims: TokenClaims): Promise<void>
    }
    /** onRequest hook for routes that need a bearer token: sets request.token or answers 401. */
    authenticate (request: FastifyRequest): Promise<void>
  }
  interface FastifyRequest {
    token: TokenClaims | null
  }
}

const REALM = 'auth-service'
/** RFC 9068 access tokens, which login tokens are too: the JOSE header says so, and verification insists. */
const ACCESS_TOKEN_TYPE = 'at+jwt'
/** How far apart the clocks of this service's replicas may be: small, and explicit. */
export const CLOCK_TOLERANCE_SECONDS = 5

/**
 * The message as an RFC 6750 (3) error_description: a quoted-string of %x20-21 / %x23-5B / %x5D-7E
 * only, so no double quote (it would end the string) and no backslash.
 */
function errorDescription (message: string): string {
  return message.replaceAll('"', "'").replace(/[^\x20-\x21\x23-\x5B\x5D-\x7E]/g, '')
}

/** A 401 with the RFC 6750 challenge; no error code when the request carried no token at all. */
function unauthorized (message: string, errorCode?: 'invalid_token'): HttpError {
  const challenge = errorCode === undefined
    ? `Bearer realm="${REALM}"`
    : `Bearer realm="${REALM}", error="${errorCode}", error_description="${errorDescription(message)}"`
  return new HttpError(401, message, { 'www-authenticate': challenge })
}

const FAST_JWT_MESSAGES: Record<string, string> = {
  FAST_JWT_EXPIRED: 'Token has expired',
  FAST_JWT_INACTIVE: 'Token is not yet valid',
  FAST_JWT_INVALID_CLAIM_VALUE: 'Token was issued by another issuer or for another audience',
  FAST_JWT_MISSING_REQUIRED_CLAIM: 'Token lacks a required claim',
  FAST_JWT_INVALID_TYPE: 'Token is not an access token (typ must be at+jwt)'
}

/** The token of an `Authorization: Bearer <token>` header. */
function bearerToken (request: FastifyRequest): string {
  const header = request.headers.authorization
  if (header === undefined) throw unauthorized('Missing bearer token')
  const match = /^Bearer +([A-Za-z0-9_.-]+=*) *$/i.exec(header)
  if (match === null) throw unauthorized('Authorization header must be "Bearer <token>"', 'invalid_token')
  return match[1]
}

/**
 * @fastify/jwt with the key ring. Tokens are signed with the one signing key and verified with
 * the key their `kid` names, allowing only that key's algorithm, the configured issuer and
 * audience; `jku`, `jwk` and `x5u` headers are never followed. Revoked token ids live in Redis
 * in Redis mode (shared by replicas), in process otherwise.
 */
export default fp<{ keyRing: KeyRing }>(async function tokensPlugin (app, { keyRing }) {
  const { JWT_ISSUER: issuer, JWT_AUDIENCE: audience, TOKEN_TTL_SECONDS: ttlSeconds } = app.config
  const { signingKey, verificationKeys } = keyRing
  await app.register(fastifyJwt, {
    secret: { private: signingKey.privateKeyPem, public: signingKey.publicKeyPem },
    sign: { algorithm: signingKey.algorithm, kid: signingKey.kid, iss: issuer, aud: audience, header: { alg: signingKey.algorithm, typ: ACCESS_TOKEN_TYPE } },
    verify: {
      algorithms: [signingKey.algorithm],
      allowedIss: issuer,
      allowedAud: audience,
      requiredClaims: ['iss', 'aud', 'sub', 'jti', 'iat', 'exp'],
      checkTyp: ACCESS_TOKEN_TYPE,
      // Seconds: no token is accepted after its lifetime, whatever exp it claims.
      maxAge: ttlSeconds,
      clockTolerance: CLOCK_TOLERANCE_SECONDS * 1000
    }
  })
  const revocations = app.redis !== undefined
    ? new RedisRevocationList(app.redis, `${app.config.REDIS_KEY_PREFIX}revoked:`)
    : new LocalRevocationList()

  app.decorate('tokens', {
    keyRing,
    issue (username: string): IssuedToken {
      const issuedAt = Math.floor(Date.now() / 1000)
      const expiresAt = issuedAt + ttlSeconds
      const accessToken = app.jwt.sign({ sub: username, jti: randomUUID(), iat: issuedAt, exp: expiresAt })
      return { accessToken, expireDate: expiresAt * 1000 }
    },
    async verify (token: string): Promise<TokenClaims> {
      let kid: unknown
      try {
        kid = app.jwt.decode<{ header: { kid?: unknown } }>(token, { complete: true })?.header.kid
      } catch {
        throw unauthorized('Token is malformed', 'invalid_token')
      }
      const key = typeof kid === 'string' ? verificationKeys.get(kid) : undefined
      if (key === undefined) throw unauthorized('Token was not signed by a known key', 'invalid_token')
      let claims: TokenClaims
      try {
        claims = app.jwt.verify<TokenClaims>(token, { key: key.publicKeyPem, algorithms: [key.algorithm] })
      } catch (error) {
        const message = FAST_JWT_MESSAGES[(error as { code?: string }).code ?? ''] ?? 'Token signature or claims are invalid'
        throw unauthorized(message, 'invalid_token')
      }
      const now = Date.now() / 1000
      if (claims.iat > now + CLOCK_TOLERANCE_SECONDS) throw unauthorized('Token was issued in the future', 'invalid_token')
      if (claims.exp - claims.iat > ttlSeconds) throw unauthorized('Token lives longer than this service issues tokens for', 'invalid_token')
      if (await revocations.isRevoked(claims.jti)) throw unauthorized('Token has been revoked', 'invalid_token')
      await app.tokens.checkAccount(claims)
      return claims
    },
    async checkAccount ({ sub, iat }: Pick<TokenClaims, 'sub' | 'iat'>): Promise<void> {
      const user = await app.users.find(sub)
      // The same answer as a revoked token: whether the account still exists is not the caller's business.
      if (user === undefined || !acceptsTokenIssuedAt(user, iat)) throw unauthorized('Token has been revoked', 'invalid_token')
    },
    async revoke (claims: TokenClaims): Promise<void> {
      await revocations.revoke(claims.jti, claims.exp * 1000)
    }
  })

  // Client-credentials tokens: signed and checked with node:crypto directly (see jwt-access-tokens.ts),
  // the grant path's largest cost after the HTTP request itself.
  const signAccessToken = accessTokenSigner(keyRing)
  const checkAccessToken = accessTokenVerifier(keyRing)
  app.decorate('accessTokens', {
    issue ({ clientId, audience, scope, ttlSeconds: lifetime }: AccessTokenGrant): IssuedAccessToken {
      const iat = Math.floor(Date.now() / 1000)
      const claims: AccessTokenClaims = { iss: issuer, sub: clientId, client_id: clientId, aud: audience, scope, iat, exp: iat + lifetime, jti: randomUUID() }
      return { accessToken: signAccessToken(claims), claims }
    },
    async verify (token: string): Promise<AccessTokenClaims> {
      const claims = checkAccessToken(token)
      const { iss, sub, client_id: clientId, aud, scope, iat, exp, jti } = claims
      if (iss !== issuer) throw new AccessTokenError('Token was issued by another issuer')
      if (typeof sub !== 'string' || typeof clientId !== 'string' || typeof aud !== 'string' || typeof scope !== 'string' ||
        typeof iat !== 'number' || typeof exp !== 'number' || typeof jti !== 'string') throw new AccessTokenError('Token lacks a required claim')
      if (exp * 1000 <= Date.now()) throw new AccessTokenError('Token has expired')
      if (await revocations.isRevoked(jti)) throw new AccessTokenError('Token has been revoked')
      return claims as unknown as AccessTokenClaims
    }
  })

  app.decorateRequest('token', null)
  app.decorate('authenticate', async function authenticate (request: FastifyRequest) {
    request.token = await app.tokens.verify(bearerToken(request))
  })
}, { name: 'tokens', dependencies: ['config', 'redis', 'errors', 'users'] })
