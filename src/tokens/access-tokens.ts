import { randomUUID } from 'node:crypto'
import { createDecoder, createSigner, createVerifier, TokenError } from 'fast-jwt'
import { acceptsTokenIssuedAt as clientAcceptsTokenIssuedAt, MAX_TOKEN_TTL_SECONDS } from '../clients/client.ts'
import type { ClientRepository } from '../clients/repository.ts'
import { acceptsTokenIssuedAt as userAcceptsTokenIssuedAt, type UserRepository } from '../users/repository.ts'
import type { KeyRing, SigningKeys, VerificationKey } from './keys.ts'
import type { RevocationList } from './revocations.ts'

/** RFC 9068 §2.1: the media type of a JWT access token, in its `typ` header. Every token here is one. */
export const ACCESS_TOKEN_TYPE = 'at+jwt'
/** How far apart the clocks of this service's replicas may be: small, and explicit. */
export const CLOCK_TOLERANCE_SECONDS = 5

/** What every access token of this service carries (RFC 9068 §2.2). */
interface CommonClaims {
  iss: string
  sub: string
  aud: string
  iat: number
  exp: number
  jti: string
}

/** A login token: `sub` is the username, `aud` is JWT_AUDIENCE, and no `client_id`. */
export type UserTokenClaims = CommonClaims

/** RFC 8693 §4.1: the client acting (`sub`, a client id) and, nested, the one that acted before it. */
export interface Actor {
  sub: string
  act?: Actor
}

/**
 * A token an exchanged token was derived from (its subject token, and that one's, back to the
 * root): what ends the exchanged token when it is revoked or what it speaks for ends. `client_id`
 * when it was a client's token, none for the root login token (whose account is the `sub`).
 */
export interface DerivedFrom {
  jti: string
  iat: number
  client_id?: string
}

/**
 * An OAuth client's token, `aud` the resource or resources granted, never JWT_AUDIENCE. Of the
 * client credentials grant: `sub` and `client_id` are the client. Of a token exchange (RFC 8693):
 * `sub` is the subject token's, `client_id` the exchanging client, `act` the chain of actors
 * (outermost the exchanging client), `derived_from` the chain's tokens, root first, one per actor.
 */
export interface ClientTokenClaims extends Omit<CommonClaims, 'aud'> {
  aud: string | string[]
  client_id: string
  scope: string
  act?: Actor
  derived_from?: DerivedFrom[]
}

/** The claims of each kind of access token. */
export interface ClaimsByKind {
  user: UserTokenClaims
  client: ClientTokenClaims
}

export type TokenKind = keyof ClaimsByKind

export interface IssuedToken<Claims> {
  accessToken: string
  claims: Claims
}

/** What a client-credentials grant decided: who, for which resource or resources, with which scopes, for how long. */
export interface ClientGrant {
  clientId: string
  audience: string | string[]
  scope: string
  ttlSeconds: number
}

/** What a token exchange decided: the live subject token, the exchanging client, the target, the scopes and the end. */
export interface ExchangeGrant {
  subject: UserTokenClaims | ClientTokenClaims
  clientId: string
  audience: string | string[]
  scope: string
  exp: number
}

/** The number of actors in a token's `act` chain: 0 for a token that was not exchanged. */
export function exchangeDepth (claims: UserTokenClaims | ClientTokenClaims): number {
  return 'derived_from' in claims ? claims.derived_from?.length ?? 0 : 0
}

export interface AccessTokenSettings {
  /** JWT_ISSUER: `iss` of every token. */
  issuer: string
  /** JWT_AUDIENCE: `aud` of login tokens. */
  userAudience: string
  /** TOKEN_TTL_SECONDS: how long a login token lives. */
  userTokenTtlSeconds: number
  /** TOKEN_EXCHANGE_MAX_DEPTH: the most actors an exchanged token's chain names. */
  exchangeMaxDepth: number
}

/** Where verification looks up what a token speaks for, and whether it was revoked. */
export interface AccessTokenStores {
  users: Pick<UserRepository, 'find'>
  clients: Pick<ClientRepository, 'find'>
  revocations: RevocationList
}

/**
 * An access token that does not verify: RFC 6750's invalid_token. The message says why and is
 * safe to show; the bearer routes answer it with a 401, introspection with `{ active: false }`.
 */
export class InvalidTokenError extends Error {
  constructor (message: string) {
    // An answer to the client, not a fault: no stack trace, as HttpError.
    const stackTraceLimit = Error.stackTraceLimit
    Error.stackTraceLimit = 0
    super(message)
    Error.stackTraceLimit = stackTraceLimit
    this.name = 'InvalidTokenError'
  }
}

/** `audience`: one string, or a non-empty list of them (RFC 7519 §4.1.3). */
type ClaimType = 'string' | 'number' | 'audience'

/** What a token of one kind must carry, and how long it may live. */
interface KindRules {
  claims: Record<string, ClaimType>
  /** The `aud` it must name, when one is fixed. */
  audience?: string
  maxLifetimeSeconds: number
}

const COMMON_CLAIM_TYPES: Record<keyof CommonClaims, ClaimType> = { iss: 'string', sub: 'string', aud: 'string', iat: 'number', exp: 'number', jti: 'string' }

const FAST_JWT_MESSAGES: Record<string, string> = {
  FAST_JWT_EXPIRED: 'Token has expired',
  FAST_JWT_INACTIVE: 'Token is not yet valid',
  FAST_JWT_INVALID_CLAIM_VALUE: 'Token was issued by another issuer or for another audience',
  FAST_JWT_MISSING_REQUIRED_CLAIM: 'Token lacks a required claim',
  FAST_JWT_INVALID_TYPE: 'Token is not an access token (typ must be at+jwt)'
}

type Verifier = (token: string) => Record<string, unknown>

const HOLDS_TYPE: Record<ClaimType, (value: unknown) => boolean> = {
  string: (value) => typeof value === 'string',
  number: (value) => typeof value === 'number',
  audience: (value) => typeof value === 'string' || (Array.isArray(value) && value.length > 0 && value.every((item) => typeof item === 'string'))
}

/** What is built for one key ring: the signer of its signing key and, by kid, one verifier per kind. */
interface RingTools {
  ring: KeyRing
  sign: (claims: object) => string
  verifiers: Map<string, Record<TokenKind, Verifier>>
}

/**
 * Every access token this service issues, login tokens and client tokens alike: signed with the
 * key ring's signing key and verified with the key their `kid` names, under one set of rules
 * (fast-jwt, a signer and verifiers built once per key as the ring changes, never per request).
 * The caller names the kind it expects, so the rules of each kind are checked wherever a token is
 * accepted. The kinds are disjoint: a
 * login token never carries `client_id` and a client token always does, and no client token is
 * for JWT_AUDIENCE (the grant refuses it, and so does verification). `jku`, `jwk` and `x5u`
 * headers are never followed.
 */
export class AccessTokens {
  readonly #keys: SigningKeys
  readonly #settings: AccessTokenSettings
  readonly #stores: AccessTokenStores
  readonly #onUnknownKey: () => void
  readonly #rules: Record<TokenKind, KindRules>
  readonly #decode = createDecoder({ complete: true })
  /** What was built for the ring of the last use. */
  #built: RingTools | undefined

  /** `onUnknownKey` is told of each token whose kid names no key of the ring. */
  constructor (keys: SigningKeys, settings: AccessTokenSettings, stores: AccessTokenStores, onUnknownKey: () => void = () => {}) {
    this.#keys = keys
    this.#settings = settings
    this.#stores = stores
    this.#onUnknownKey = onUnknownKey
    this.#rules = {
      user: { claims: COMMON_CLAIM_TYPES, audience: settings.userAudience, maxLifetimeSeconds: settings.userTokenTtlSeconds },
      client: { claims: { ...COMMON_CLAIM_TYPES, aud: 'audience', client_id: 'string', scope: 'string' }, maxLifetimeSeconds: MAX_TOKEN_TTL_SECONDS }
    }
  }

  /** The keys now (they change as managed keys rotate). */
  get keyRing (): KeyRing {
    return this.#keys.keyRing
  }

  /**
   * The signer and verifiers of the key ring now. When the ring has changed, a signer is built for
   * a new signing key and verifiers for new keys; those of keys no longer in it are dropped.
   */
  #forCurrentRing (): RingTools {
    const ring = this.#keys.keyRing
    const built = this.#built
    if (built?.ring === ring) return built
    const { privateKeyPem, algorithm, kid } = ring.signingKey
    this.#built = {
      ring,
      sign: built?.ring.signingKey.kid === kid ? built.sign : createSigner({ key: privateKeyPem, algorithm, kid, header: { alg: algorithm, typ: ACCESS_TOKEN_TYPE } }),
      verifiers: new Map([...ring.verificationKeys].map(([keyId, key]) => [keyId, built?.verifiers.get(keyId) ?? this.#verifiersOf(key)]))
    }
    return this.#built
  }

  #verifiersOf ({ algorithm, publicKeyPem }: VerificationKey): Record<TokenKind, Verifier> {
    const verifier = (rules: KindRules): Verifier => createVerifier({
      key: publicKeyPem,
      algorithms: [algorithm],
      checkTyp: ACCESS_TOKEN_TYPE,
      allowedIss: this.#settings.issuer,
      allowedAud: rules.audience,
      requiredClaims: Object.keys(rules.claims),
      clockTolerance: CLOCK_TOLERANCE_SECONDS * 1000,
      // No token is accepted after its kind's longest lifetime, whatever exp it claims.
      maxAge: rules.maxLifetimeSeconds * 1000
    })
    return { user: verifier(this.#rules.user), client: verifier(this.#rules.client) }
  }

  /** A login token for `username`. */
  issueUserToken (username: string): IssuedToken<UserTokenClaims> {
    const iat = Math.floor(Date.now() / 1000)
    const { issuer: iss, userAudience: aud, userTokenTtlSeconds } = this.#settings
    const claims: UserTokenClaims = { iss, sub: username, aud, iat, exp: iat + userTokenTtlSeconds, jti: randomUUID() }
    return { accessToken: this.#forCurrentRing().sign(claims), claims }
  }

  /** A client's token for what its grant decided. */
  issueClientToken ({ clientId, audience, scope, ttlSeconds }: ClientGrant): IssuedToken<ClientTokenClaims> {
    const iat = Math.floor(Date.now() / 1000)
    const claims: ClientTokenClaims = { iss: this.#settings.issuer, sub: clientId, client_id: clientId, aud: audience, scope, iat, exp: iat + ttlSeconds, jti: randomUUID() }
    return { accessToken: this.#forCurrentRing().sign(claims), claims }
  }

  /**
   * A token exchange's token (RFC 8693 §4.1, delegation): the subject's `sub`, the exchanging
   * client as `client_id` and outermost actor, the subject's own `act` nested inside, and the
   * subject appended to the tokens it derives from.
   */
  issueExchangedToken ({ subject, clientId, audience, scope, exp }: ExchangeGrant): IssuedToken<ClientTokenClaims> {
    const iat = Math.floor(Date.now() / 1000)
    const previous = 'client_id' in subject ? subject : undefined
    const act: Actor = previous?.act === undefined ? { sub: clientId } : { sub: clientId, act: previous.act }
    const derivedFrom: DerivedFrom[] = [...previous?.derived_from ?? [], { jti: subject.jti, iat: subject.iat, ...(previous !== undefined ? { client_id: previous.client_id } : {}) }]
    const claims: ClientTokenClaims = {
      iss: this.#settings.issuer, sub: subject.sub, client_id: clientId, aud: audience, scope, iat, exp, jti: randomUUID(), act, derived_from: derivedFrom
    }
    return { accessToken: this.#forCurrentRing().sign(claims), claims }
  }

  /** The kind a token says it is, before anything is verified: a client's carries `client_id`. */
  claimedKind (token: string): TokenKind {
    return 'client_id' in this.#decoded(token).payload ? 'client' : 'user'
  }

  /**
   * The claims of a live token of the expected kind: signed by a known key with that key's
   * algorithm, typ at+jwt, this issuer, the kind's claims and audience, not expired, not yet to
   * come, no longer lived than the kind allows, not of the other kind, not revoked, and an account
   * (login token) or client (client token) that still accepts it. Throws InvalidTokenError saying
   * which rule failed.
   */
  async verify<Kind extends TokenKind> (token: string, kind: Kind): Promise<ClaimsByKind[Kind]> {
    const { kid } = this.#decoded(token).header
    const verifiers = typeof kid === 'string' ? this.#forCurrentRing().verifiers.get(kid) : undefined
    if (verifiers === undefined) {
      this.#onUnknownKey()
      throw new InvalidTokenError('Token was not signed by a known key')
    }
    let claims: Record<string, unknown>
    try {
      claims = verifiers[kind](token)
    } catch (error) {
      if (!(error instanceof TokenError)) throw error
      throw new InvalidTokenError(FAST_JWT_MESSAGES[error.code] ?? 'Token signature or claims are invalid')
    }
    const rules = this.#rules[kind]
    if (Object.entries(rules.claims).some(([claim, type]) => !HOLDS_TYPE[type](claims[claim]))) throw new InvalidTokenError('Token lacks a required claim')
    const { iat, exp, jti, sub } = claims as unknown as CommonClaims
    if (kind === 'user' && 'client_id' in claims) throw new InvalidTokenError('Token is a client\'s, not a login token')
    // aud may also be a list (RFC 7519 §4.1.3): JWT_AUDIENCE is none of a client token's.
    if (kind === 'client' && [claims.aud].flat().includes(this.#settings.userAudience)) throw new InvalidTokenError(FAST_JWT_MESSAGES.FAST_JWT_INVALID_CLAIM_VALUE)
    if (iat > Date.now() / 1000 + CLOCK_TOLERANCE_SECONDS) throw new InvalidTokenError('Token was issued in the future')
    if (exp - iat > rules.maxLifetimeSeconds) throw new InvalidTokenError('Token lives longer than this service issues tokens for')
    const chain = kind === 'client' ? this.#exchangeChain(claims) : []
    // The token and every token it derives from, each checked against the revocation list and what it speaks for.
    const tokens: DerivedFrom[] = [...chain, { jti, iat, ...(kind === 'client' ? { client_id: claims.client_id as string } : {}) }]
    const live = await Promise.all(tokens.map((token) => this.#isLive(token, sub)))
    if (live.includes(false)) throw new InvalidTokenError('Token has been revoked')
    return claims as unknown as ClaimsByKind[Kind]
  }

  /**
   * The tokens an exchanged token derives from, when its `act` and `derived_from` agree: one per
   * actor, at most TOKEN_EXCHANGE_MAX_DEPTH, which bounds what verifying it costs. None for a
   * token that was not exchanged.
   */
  #exchangeChain (claims: Record<string, unknown>): DerivedFrom[] {
    const { act, derived_from: derivedFrom } = claims
    if (act === undefined && derivedFrom === undefined) return []
    if (!Array.isArray(derivedFrom) || derivedFrom.length === 0 || derivedFrom.length > this.#settings.exchangeMaxDepth) {
      throw new InvalidTokenError('Token has been exchanged more times than this service allows')
    }
    // The actors, outermost first; never more read than the chain holds.
    const actors: unknown[] = []
    let actor: unknown = act
    while (typeof actor === 'object' && actor !== null && actors.length <= derivedFrom.length) {
      actors.push((actor as Actor).sub)
      actor = (actor as Actor).act
    }
    const wellFormed = actor === undefined && actors.length === derivedFrom.length && actors[0] === claims.client_id && actors.every((sub) => typeof sub === 'string') &&
      derivedFrom.every((token: DerivedFrom, index) => typeof token?.jti === 'string' && typeof token.iat === 'number' &&
        // Only the root may be a login token (no client_id); each later one was issued to the actor before.
        (index === 0 ? token.client_id === undefined || typeof token.client_id === 'string' : token.client_id === actors[derivedFrom.length - index]))
    if (!wellFormed) throw new InvalidTokenError('Token lacks a required claim')
    return derivedFrom
  }

  /**
   * Whether a token is not revoked and what it speaks for still accepts it: a client not gone nor
   * registered again since (a token of the removed one is not the new one's); for a login token
   * (no client_id), the account `sub` not gone, disabled, nor its password changed since. The
   * same answer as a revoked token: whether the account or client exists is not the caller's business.
   */
  async #isLive ({ jti, iat, client_id: clientId }: DerivedFrom, sub: string): Promise<boolean> {
    const [revoked, accepts] = await Promise.all([
      this.#stores.revocations.isRevoked(jti),
      clientId === undefined
        ? this.#stores.users.find(sub).then((user) => user !== undefined && userAcceptsTokenIssuedAt(user, iat))
        : this.#stores.clients.find(clientId).then((client) => client !== undefined && clientAcceptsTokenIssuedAt(client, iat))
    ])
    return !revoked && accepts
  }

  /** Refused by every replica until it expires. */
  async revoke ({ jti, exp }: Pick<CommonClaims, 'jti' | 'exp'>): Promise<void> {
    await this.#stores.revocations.revoke(jti, exp * 1000)
  }

  #decoded (token: string): { header: Record<string, unknown>, payload: Record<string, unknown> } {
    try {
      return this.#decode(token)
    } catch {
      throw new InvalidTokenError('Token is malformed')
    }
  }
}
