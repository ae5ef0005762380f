import type { Client } from '../clients/client.ts'
import { CLOCK_TOLERANCE_SECONDS } from './access-tokens.ts'
import type { KeyEncryptionKey } from './key-encryption.ts'
import { JWKS_MAX_AGE_SECONDS, type JwtAlgorithm, type SigningKey } from './keys.ts'

/**
 * The lifecycle of managed signing keys, as pure functions of the stored keys and the time, so
 * that every replica reading the same record at the same time agrees on which key signs:
 * - next: published in the JWKS, signing nothing, from `createdAt` to `activatesAt`;
 * - current: signs, from `activatesAt` until `retiresAt` (unset while it has no successor);
 * - retired: published, signing nothing, until `expiresAt`, when every token it signed has expired;
 * - expired: gone from the JWKS, refused, and dropped from the store at its next write.
 */

/** A managed key as its store holds it: times in ms since the epoch, the private key sealed under the KEK. */
export interface StoredSigningKey {
  kid: string
  algorithm: JwtAlgorithm
  /** The PKCS#8 PEM, sealed (KeyEncryptionKey.seal) for this kid: the store never holds it in clear. */
  sealedPrivateKey: string
  createdAt: number
  activatesAt: number
  /** Its successor's activatesAt, set when the successor is created. */
  retiresAt?: number
  /** Set once it has retired, from the longest lifetime of any token it may have signed. */
  expiresAt?: number
}

/** The managed keys, shared by every replica (Redis) or kept in DATA_DIR (embedded); state that must survive. */
export interface SigningKeyStore {
  list (): Promise<StoredSigningKey[]>
  /**
   * Applies `change` to the stored keys atomically and returns the keys stored after it. When
   * another writer came first, `change` is applied again to what is stored then; a change that
   * returns undefined writes nothing.
   */
  update (change: (keys: StoredSigningKey[]) => StoredSigningKey[] | undefined): Promise<StoredSigningKey[]>
}

export type KeyState = 'next' | 'current' | 'retired' | 'expired'

export function keyState (key: StoredSigningKey, now: number): KeyState {
  if (now < key.activatesAt) return 'next'
  if (key.retiresAt === undefined || now < key.retiresAt) return 'current'
  if (key.expiresAt === undefined || now < key.expiresAt) return 'retired'
  return 'expired'
}

/** The key that signs at `now`. */
export function currentKey (keys: StoredSigningKey[], now: number): StoredSigningKey | undefined {
  return keys.filter((key) => keyState(key, now) === 'current').sort((a, b) => b.activatesAt - a.activatesAt)[0]
}

/**
 * How far a replica may lag behind the store in publishing a key: it rereads the keys every
 * KEY_SET_POLL_SECONDS, and the clocks of replicas and consumers may differ by a second.
 */
export const KEY_SET_POLL_SECONDS = 1
const PUBLICATION_MARGIN_SECONDS = KEY_SET_POLL_SECONDS + 1

/** The times that follow from JWT_KEY_ROTATION_SECONDS. */
export interface RotationSchedule {
  /** How long each key signs. */
  intervalMs: number
  /** How long a key is published before it signs: a third of the interval. */
  leadMs: number
  /**
   * How long consumers may cache the JWKS: the lead less the publication margin, so a consumer's
   * cached set always holds a key before it signs; at most JWKS_MAX_AGE_SECONDS, so a revoked key
   * leaves consumers' caches within minutes.
   */
  jwksMaxAgeSeconds: number
}

export function rotationSchedule (intervalSeconds: number): RotationSchedule {
  const leadSeconds = Math.floor(intervalSeconds / 3)
  return {
    intervalMs: intervalSeconds * 1000,
    leadMs: leadSeconds * 1000,
    jwksMaxAgeSeconds: Math.min(JWKS_MAX_AGE_SECONDS, leadSeconds - PUBLICATION_MARGIN_SECONDS)
  }
}

/** When the signing key at `now` stops signing: its successor's activatesAt, or when the successor is due to be. */
export function switchAt (keys: StoredSigningKey[], now: number, schedule: RotationSchedule): number | undefined {
  const current = currentKey(keys, now)
  if (current === undefined) return undefined
  return current.retiresAt ?? Math.max(current.activatesAt + schedule.intervalMs, now + schedule.leadMs)
}

/** A new key, sealed, that the lifecycle has not given times yet. */
export type SealedKey = Pick<StoredSigningKey, 'kid' | 'algorithm' | 'sealedPrivateKey'>

export function sealKey (kek: KeyEncryptionKey, key: SigningKey): SealedKey {
  return { kid: key.kid, algorithm: key.algorithm, sealedPrivateKey: kek.seal(key.kid, key.privateKeyPem) }
}

/**
 * What the stored keys are due for at `now`: a first key (none signs and none is coming), the
 * next key (the signing key's successor, a lead before it is to sign), or expiries (a retired key
 * without its expiry yet, or an expired key still stored).
 */
export type DueStep = 'first key' | 'next key' | 'expiry'

export function dueStep (keys: StoredSigningKey[], now: number, schedule: RotationSchedule): DueStep | undefined {
  if (firstKeyDue(keys, now)) return 'first key'
  if (nextKeyDue(keys, now, schedule)) return 'next key'
  if (expiryDue(keys, now)) return 'expiry'
  return undefined
}

function firstKeyDue (keys: StoredSigningKey[], now: number): boolean {
  return !keys.some((key) => ['current', 'next'].includes(keyState(key, now)))
}

function nextKeyDue (keys: StoredSigningKey[], now: number, schedule: RotationSchedule): boolean {
  const current = currentKey(keys, now)
  return current !== undefined && current.retiresAt === undefined && now >= current.activatesAt + schedule.intervalMs - schedule.leadMs
}

function expiryDue (keys: StoredSigningKey[], now: number): boolean {
  return keys.some((key) => keyState(key, now) === 'expired' || (keyState(key, now) === 'retired' && key.expiresAt === undefined))
}

const unexpired = (keys: StoredSigningKey[], now: number) => keys.filter((key) => keyState(key, now) !== 'expired')

/**
 * The keys with `key` added, when a key is due: a first key signs at once (nobody holds a token
 * yet); the next key signs a lead from now at the earliest, an interval after the signing key
 * began, which retires then. Undefined when no key is due (another replica has just added it).
 */
export function withNewKey (keys: StoredSigningKey[], now: number, schedule: RotationSchedule, key: SealedKey): StoredSigningKey[] | undefined {
  const kept = unexpired(keys, now)
  if (firstKeyDue(kept, now)) return [...kept, { ...key, createdAt: now, activatesAt: now }]
  if (!nextKeyDue(kept, now, schedule)) return undefined
  const current = currentKey(kept, now) as StoredSigningKey
  const activatesAt = Math.max(current.activatesAt + schedule.intervalMs, now + schedule.leadMs)
  return [...kept.map((stored) => stored === current ? { ...stored, retiresAt: activatesAt } : stored), { ...key, createdAt: now, activatesAt }]
}

/**
 * The keys with a key file's key as the first managed key, when a first key is due. It has signed
 * for who knows how long: it enters as a key whose interval is up, so the next key is due at once
 * and takes over a lead later, when consumers have had the time to fetch it.
 */
export function withFileKey (keys: StoredSigningKey[], now: number, schedule: RotationSchedule, key: SealedKey): StoredSigningKey[] | undefined {
  const kept = unexpired(keys, now)
  if (!firstKeyDue(kept, now)) return undefined
  return [...kept, { ...key, createdAt: now, activatesAt: now - schedule.intervalMs }]
}

/**
 * The keys with expired ones dropped and each retired key given its expiry: every token it signed
 * ends at most `longestLifetimeMs` after it retired, and verifiers accept one for the clock
 * tolerance beyond. Undefined when nothing is due.
 */
export function withExpiries (keys: StoredSigningKey[], now: number, longestLifetimeMs: number): StoredSigningKey[] | undefined {
  if (!expiryDue(keys, now)) return undefined
  return unexpired(keys, now).map((key) => key.retiresAt !== undefined && key.expiresAt === undefined && keyState(key, now) === 'retired'
    ? { ...key, expiresAt: key.retiresAt + longestLifetimeMs + CLOCK_TOLERANCE_SECONDS * 1000 }
    : key)
}

/** A kid that names no published key. */
export class UnknownKeyError extends Error {
  constructor (kid: string) {
    super(`No published managed key has the kid ${kid}`)
    this.name = 'UnknownKeyError'
  }
}

/**
 * The keys without `kid` (an emergency revocation), so no replica verifies its tokens any more.
 * When it was signing, the next key signs from now on, or `replacement` when there is no next
 * key; when it was the next key, the signing key signs on until a new next key is due.
 */
export function withoutKey (keys: StoredSigningKey[], kid: string, now: number, replacement: SealedKey): StoredSigningKey[] {
  const kept = unexpired(keys, now)
  const revoked = kept.find((key) => key.kid === kid)
  if (revoked === undefined) throw new UnknownKeyError(kid)
  const rest = kept.filter((key) => key !== revoked)
  const state = keyState(revoked, now)
  if (state === 'next') return rest.map((key) => key.retiresAt === revoked.activatesAt ? { ...key, retiresAt: undefined } : key)
  if (state === 'retired') return rest
  const next = rest.find((key) => keyState(key, now) === 'next')
  if (next === undefined) return [...rest, { ...replacement, createdAt: now, activatesAt: now }]
  return rest.map((key) => key === next ? { ...key, activatesAt: now } : key)
}

/** The longest lifetime any token may be issued with, in seconds, and whose it is: TOKEN_TTL_SECONDS or a client's `--ttl`. */
export function longestTokenLifetime (tokenTtlSeconds: number, clients: Client[]): { seconds: number, of: string } {
  let longest = { seconds: tokenTtlSeconds, of: 'TOKEN_TTL_SECONDS' }
  for (const client of clients) {
    if ((client.tokenTtlSeconds ?? 0) > longest.seconds) longest = { seconds: client.tokenTtlSeconds as number, of: `client ${client.clientId}` }
  }
  return longest
}
