import { setTimeout as sleep } from 'node:timers/promises'
import type { JWK } from 'jose'
import { isLoopbackHost } from '../config.ts'
import { CLIENT_ID_PATTERN_SOURCE } from '../schemas/clients-file.ts'

/** A secret of a `client_secret_*` client, kept only as its digest (see secrets.ts). */
export interface ClientSecret {
  digest: string
  createdAt: number
  /** Set when the secret is being rotated out: it stops working at this time (Unix ms). */
  expiresAt?: number
}

/**
 * How a client proves who it is at the token endpoint. Exactly one of these per client:
 * - `secrets`: client_secret_basic / client_secret_post (RFC 6749 §2.3.1);
 * - `jwks` or `jwksUri`: private_key_jwt (RFC 7523), assertions signed by the client's own key;
 * - `federated`: workload identity, the client assertion is a token of another issuer (a
 *   Kubernetes projected service-account token, a SPIFFE JWT-SVID) about one subject.
 */
export interface FederatedIdentity {
  issuer: string
  subject: string
  jwksUri: string
}

export const MANAGED_BY_CLIENTS_FILE = 'clients-file'

/** The longest lifetime a client's tokens may be given, and so the longest any client token lives. */
export const MAX_TOKEN_TTL_SECONDS = 86400

/** A registered OAuth client (a service account). State that must survive: stored durably. */
export interface Client {
  clientId: string
  /** Scopes it may be granted; a grant without `scope` gets all of them. */
  scopes: string[]
  /** Resources (`aud` values) it may get tokens for; the first is the default. Never JWT_AUDIENCE. */
  audiences: string[]
  /**
   * Resources it serves, as a resource server: it may introspect tokens for them (besides its own).
   * JWT_AUDIENCE among them lets it introspect login tokens.
   */
  serves?: string[]
  /**
   * Resources it may exchange tokens for (RFC 8693): a token it may introspect (its own, or one for
   * a resource it serves) for a narrower one for one of these. None: it cannot exchange at all.
   * Never JWT_AUDIENCE.
   */
  exchangeAudiences?: string[]
  /** Lifetime of its tokens; TOKEN_TTL_SECONDS when unset. */
  tokenTtlSeconds?: number
  secrets?: ClientSecret[]
  jwks?: { keys: JWK[] }
  jwksUri?: string
  federated?: FederatedIdentity
  /**
   * Set on a client a clients-file apply created: the file is its source of truth, so the CLI (unless
   * forced) and the admin API leave it alone, and reconciliation may remove it.
   */
  managedBy?: typeof MANAGED_BY_CLIENTS_FILE
  /** Unix ms, a whole second when registered (see registrationTime): its tokens are those issued since. */
  createdAt: number
  updatedAt: number
}

/**
 * The `createdAt` of a client registered now: the next whole second, once the clock has reached it.
 * A token counts for a client only if issued at or after its createdAt, and `iat` has whole seconds:
 * on a second's edge, a token of an earlier client of the same id (issued before) is told from one
 * of this client (issued after) even when both fall in one second. Registration waits up to a second.
 */
export async function registrationTime (): Promise<number> {
  const createdAt = Math.ceil(Date.now() / 1000) * 1000
  while (Date.now() < createdAt) await sleep(createdAt - Date.now())
  return createdAt
}

/** Whether a token issued at `issuedAt` (Unix seconds, its `iat`) is of this client, not of a removed one of the same id. */
export function acceptsTokenIssuedAt (client: Client, issuedAt: number): boolean {
  return issuedAt * 1000 >= client.createdAt
}

export type ClientAuthKind = 'client_secret' | 'private_key_jwt' | 'workload_identity'

export function authKind (client: Client): ClientAuthKind {
  if (client.federated !== undefined) return 'workload_identity'
  if (client.jwks !== undefined || client.jwksUri !== undefined) return 'private_key_jwt'
  return 'client_secret'
}

/**
 * Client ids are plain tokens: safe in a URL, a form, a Basic header and a Redis hash tag.
 * RFC 6749 allows more, but nothing gains from ids that need escaping everywhere.
 */
export const CLIENT_ID_PATTERN = new RegExp(CLIENT_ID_PATTERN_SOURCE)

/** A scope token (RFC 6749 §3.3: printable ASCII except space, `"` and `\`). */
export const SCOPE_TOKEN_PATTERN = /^[\x21\x23-\x5B\x5D-\x7E]{1,128}$/

/**
 * JWS algorithms a client's key may sign assertions with: asymmetric only, never `none` or HMAC.
 * Ed25519 is RFC 9864's fully-specified name for EdDSA with that curve, which current
 * openid-client and oauth4webapi send.
 */
export const ASSERTION_ALGORITHMS = ['EdDSA', 'Ed25519', 'ES256', 'PS256', 'RS256'] as const

/** The members of a public JWK that may be registered; anything else (a private `d`) is refused. */
const PUBLIC_JWK_MEMBERS = new Set(['kty', 'kid', 'alg', 'use', 'key_ops', 'crv', 'x', 'y', 'n', 'e', 'x5c', 'x5t', 'x5t#S256'])

export class ClientExistsError extends Error {
  constructor (clientId: string) {
    super(`Client "${clientId}" already exists`)
    this.name = 'ClientExistsError'
  }
}

export class InvalidClientError extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'InvalidClientError'
  }
}

/** A change refused because the clients file manages the client: git is its source of truth. */
export class ManagedClientError extends Error {
  constructor (clientId: string) {
    super(`Client "${clientId}" is managed by the clients file: change it there`)
    this.name = 'ManagedClientError'
  }
}

/** Throws ManagedClientError for a client the clients file manages (the CLI unless forced, the admin API always). */
export function refuseManaged (client: Client | undefined): void {
  if (client?.managedBy === MANAGED_BY_CLIENTS_FILE) throw new ManagedClientError(client.clientId)
}

/**
 * Why a client's token lifetime does not fit JWT_KEY_ROTATION_SECONDS (`rotationSeconds`, 0 for key
 * files), or undefined: a managed key must outlive the tokens it signs. The caller names the field.
 */
export function keyRotationViolation (client: Pick<Client, 'tokenTtlSeconds'>, rotationSeconds: number): string | undefined {
  if (rotationSeconds > 0 && (client.tokenTtlSeconds ?? 0) > rotationSeconds) {
    return `must not be longer than JWT_KEY_ROTATION_SECONDS (${rotationSeconds}): a managed key must outlive the tokens it signs`
  }
  return undefined
}

/** Whether a URL may serve keys: https, or http on a loopback host (tests, sidecars). */
export function isKeySourceUrl (value: string): boolean {
  try {
    const url = new URL(value)
    return url.protocol === 'https:' || (url.protocol === 'http:' && isLoopbackHost(url.hostname))
  } catch {
    return false
  }
}

/** Why a JWKS cannot verify client assertions, or undefined when it can. */
export function jwksViolation (jwks: unknown): string | undefined {
  const keys = (jwks as { keys?: unknown } | null)?.keys
  if (!Array.isArray(keys) || keys.length === 0) return 'must be a JWK Set: { "keys": [ ... ] } with at least one key'
  for (const key of keys as Array<Record<string, unknown>>) {
    if (typeof key !== 'object' || key === null) return 'holds a key that is not an object'
    const extra = Object.keys(key).filter((member) => !PUBLIC_JWK_MEMBERS.has(member))
    if (extra.length > 0) return `holds a key with members ${extra.join(', ')}: register public keys only`
    if (!['OKP', 'EC', 'RSA'].includes(key.kty as string)) return 'holds a key that is not OKP (Ed25519), EC (P-256) or RSA'
    if (key.kty === 'OKP' && key.crv !== 'Ed25519') return 'holds an OKP key that is not Ed25519'
    if (key.kty === 'EC' && key.crv !== 'P-256') return 'holds an EC key that is not P-256'
    if (key.alg !== undefined && !(ASSERTION_ALGORITHMS as readonly unknown[]).includes(key.alg)) return `holds a key with alg ${String(key.alg)}; allowed: ${ASSERTION_ALGORITHMS.join(', ')}`
  }
  return undefined
}

/** A resource named by an `aud`: 1 to 512 characters without spaces. */
const isResource = (value: string) => value.length > 0 && value.length <= 512 && !/\s/.test(value)

/**
 * Checks a client before it is stored; throws InvalidClientError naming what is wrong.
 * `userAudience` is JWT_AUDIENCE: no client gets tokens for it, so a client token never passes as a login token.
 */
export function validateClient (client: Client, userAudience: string): void {
  if (!CLIENT_ID_PATTERN.test(client.clientId)) throw new InvalidClientError('Client id must be 1 to 128 characters of A-Z a-z 0-9 . _ ~ -')
  if (client.scopes.length === 0) throw new InvalidClientError('A client needs at least one scope')
  const badScope = client.scopes.find((scope) => !SCOPE_TOKEN_PATTERN.test(scope))
  if (badScope !== undefined) throw new InvalidClientError(`Scope "${badScope}" is not a valid scope token (printable ASCII, no space, " or \\)`)
  if (client.audiences.length === 0) throw new InvalidClientError('A client needs at least one audience')
  const badAudience = client.audiences.find((audience) => !isResource(audience))
  if (badAudience !== undefined) throw new InvalidClientError(`Audience "${badAudience}" must be 1 to 512 characters without spaces`)
  if (client.audiences.includes(userAudience)) {
    throw new InvalidClientError(`${userAudience} is the audience of login tokens (JWT_AUDIENCE): no client gets tokens for it (a client serving it may introspect them)`)
  }
  const badServed = client.serves?.find((resource) => !isResource(resource))
  if (badServed !== undefined) throw new InvalidClientError(`Served resource "${badServed}" must be 1 to 512 characters without spaces`)
  const badExchange = client.exchangeAudiences?.find((resource) => !isResource(resource))
  if (badExchange !== undefined) throw new InvalidClientError(`Exchange audience "${badExchange}" must be 1 to 512 characters without spaces`)
  if (client.exchangeAudiences?.includes(userAudience) === true) throw new InvalidClientError(`${userAudience} is the audience of login tokens (JWT_AUDIENCE): no exchange gives a token for it`)
  if (client.tokenTtlSeconds !== undefined && !(Number.isInteger(client.tokenTtlSeconds) && client.tokenTtlSeconds >= 60 && client.tokenTtlSeconds <= MAX_TOKEN_TTL_SECONDS)) {
    throw new InvalidClientError(`Token lifetime must be a whole number of seconds from 60 to ${MAX_TOKEN_TTL_SECONDS}`)
  }
  const ways = [client.secrets !== undefined, client.jwks !== undefined, client.jwksUri !== undefined, client.federated !== undefined].filter(Boolean).length
  if (ways !== 1) throw new InvalidClientError('A client authenticates in exactly one way: a secret, a JWKS file, a JWKS URI or a federated identity')
  if (client.jwks !== undefined) {
    const problem = jwksViolation(client.jwks)
    if (problem !== undefined) throw new InvalidClientError(`The JWKS ${problem}`)
  }
  if (client.jwksUri !== undefined && !isKeySourceUrl(client.jwksUri)) throw new InvalidClientError('The JWKS URI must be an https URL (http only for loopback hosts)')
  if (client.federated !== undefined) {
    const { issuer, subject, jwksUri } = client.federated
    if (issuer === '' || subject === '') throw new InvalidClientError('A federated identity needs an issuer and a subject')
    if (!isKeySourceUrl(jwksUri)) throw new InvalidClientError('The federated JWKS URI must be an https URL (http only for loopback hosts)')
  }
}

/** What `list` shows of a client: never a secret digest. */
export function describeClient (client: Client, now = Date.now()): string {
  const kind = authKind(client)
  const activeSecrets = client.secrets?.filter((secret) => secret.expiresAt === undefined || secret.expiresAt > now).length
  const how = kind === 'client_secret'
    ? `client_secret (${activeSecrets} active secret${activeSecrets === 1 ? '' : 's'})`
    : kind === 'private_key_jwt'
      ? `private_key_jwt (${client.jwksUri ?? `${client.jwks?.keys.length} registered key(s)`})`
      : `workload_identity (${client.federated?.issuer} ${client.federated?.subject})`
  return [client.clientId, how, `scope="${client.scopes.join(' ')}"`, `audience=${client.audiences.join(',')}`,
    ...(client.serves !== undefined ? [`serves=${client.serves.join(',')}`] : []),
    ...(client.exchangeAudiences !== undefined ? [`exchange-audience=${client.exchangeAudiences.join(',')}`] : []),
    ...(client.tokenTtlSeconds !== undefined ? [`ttl=${client.tokenTtlSeconds}s`] : []),
    ...(client.managedBy !== undefined ? [`managed-by=${client.managedBy}`] : [])].join('  ')
}
