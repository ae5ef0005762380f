import type { KeyEncryptionKey } from './key-encryption.ts'
import {
  currentKey, dueStep, KEY_SET_POLL_SECONDS, keyState, sealKey, switchAt, withExpiries, withFileKey, withNewKey, withoutKey,
  type DueStep, type KeyState, type RotationSchedule, type SigningKeyStore, type StoredSigningKey
} from './key-lifecycle.ts'
import { generatePrivateKeyPem, signingKeyFromPem, type JwtAlgorithm, type KeyRing, type SigningKey, type SigningKeys } from './keys.ts'

/** What the lifecycle logs to: the app's logger. */
export interface KeyLog {
  info (fields: object, message: string): void
  error (fields: object, message: string): void
}

export interface ManagedKeysOptions {
  store: SigningKeyStore
  kek: KeyEncryptionKey
  algorithm: JwtAlgorithm
  schedule: RotationSchedule
  /** The longest lifetime of any token the service issues now (key-lifecycle.ts longestTokenLifetime). */
  longestTokenLifetime: () => Promise<{ seconds: number, of: string }>
  /** A key file's key, to be the first managed key when the store holds none (migration from key files). */
  fileKey: SigningKey | undefined
  log: KeyLog
}

/** A managed key as a replica sees it at one time. */
export interface KeyStatus {
  kid: string
  algorithm: JwtAlgorithm
  state: Exclude<KeyState, 'expired'>
  createdAt: number
}

/**
 * Revokes the managed key `kid` in the store (withoutKey), as `keys revoke` and the admin API do:
 * a new key, sealed under `kek`, is generated first in case no next key can take over the signing.
 * Returns the keys stored after; throws UnknownKeyError for a kid no published key has.
 */
export async function revokeKey (store: SigningKeyStore, kek: KeyEncryptionKey, algorithm: JwtAlgorithm, kid: string): Promise<StoredSigningKey[]> {
  const replacement = sealKey(kek, signingKeyFromPem(await generatePrivateKeyPem(algorithm), algorithm, 'a generated key'))
  return await store.update((stored) => withoutKey(stored, kid, Date.now(), replacement))
}

const LIFECYCLE_MESSAGES: Record<KeyState | 'revoked', string> = {
  next: 'signing key published: it signs from activatesAt',
  current: 'signing with this key',
  retired: 'signing key retired: published until every token it signed has expired',
  expired: 'signing key removed from the JWKS: every token it signed has expired',
  revoked: 'signing key revoked: removed from the JWKS, its tokens refused'
}

/**
 * The service's own signing keys (JWT_KEY_ROTATION_SECONDS): generated as their lifecycle
 * (key-lifecycle.ts) falls due, kept in the store sealed under the KEK, and reread every
 * KEY_SET_POLL_SECONDS by every replica. Writes are compare-and-set, so of replicas that find the
 * same step due, one adds the key and the others read it. The key ring follows the stored times
 * to the millisecond, so replicas switch signer together however their polls fall.
 */
export class ManagedKeys implements SigningKeys {
  readonly jwksMaxAgeSeconds: number
  readonly #options: ManagedKeysOptions
  #stored: StoredSigningKey[] = []
  #storedText = ''
  /** The stored keys opened, by kid. */
  #opened = new Map<string, SigningKey>()
  #ring: KeyRing | undefined
  /** When the ring next changes by time alone: a key activating, retiring or expiring. */
  #ringUntil = 0
  /** What was last logged of each key, to log each step once. */
  #logged = new Map<string, { state: KeyState, key: StoredSigningKey }>()
  #createdHere = new Set<string>()
  #timer: NodeJS.Timeout | undefined
  /** The read under way, if any. */
  #polling: Promise<void> | undefined
  #failing = false

  constructor (options: ManagedKeysOptions) {
    this.#options = options
    this.jwksMaxAgeSeconds = options.schedule.jwksMaxAgeSeconds
  }

  /**
   * Reads the keys (adding a first key, or the key file's, to an empty store), checks that every
   * one opens with this KEK, then rereads them every KEY_SET_POLL_SECONDS. Throws when a token may
   * live longer than a key signs, WrongKeyEncryptionKeyError for a KEK that did not seal the keys,
   * or the store's error.
   */
  async start (): Promise<void> {
    const interval = this.#options.schedule.intervalMs / 1000
    const { seconds, of } = await this.#options.longestTokenLifetime()
    if (seconds > interval) {
      throw new Error(`JWT_KEY_ROTATION_SECONDS (${interval}) is shorter than the token lifetime of ${of} (${seconds} s): a key must outlive the tokens it signs; raise JWT_KEY_ROTATION_SECONDS or lower that --ttl`)
    }
    await this.#refresh()
    // One read at a time: a store slower than the period must not pile up reads of the same keys.
    this.#timer = setInterval(() => { this.#polling ??= this.#poll().finally(() => { this.#polling = undefined }) }, KEY_SET_POLL_SECONDS * 1000)
    this.#timer.unref()
  }

  stop (): void {
    clearInterval(this.#timer)
  }

  get keyRing (): KeyRing {
    const now = Date.now()
    if (this.#ring === undefined || now >= this.#ringUntil) this.#ring = this.#ringAt(now)
    return this.#ring
  }

  /** Every published key and its state now, oldest first. */
  statuses (now = Date.now()): KeyStatus[] {
    return this.#stored.flatMap((key) => {
      const state = keyState(key, now)
      return state === 'expired' ? [] : [{ kid: key.kid, algorithm: key.algorithm, state, createdAt: key.createdAt }]
    })
  }

  /** Revokes `kid` (revokeKey) and adopts the result at once, so this replica stops using it before the next read. */
  async revoke (kid: string): Promise<void> {
    const { store, kek, algorithm } = this.#options
    this.#adopt(await revokeKey(store, kek, algorithm, kid))
    this.#logSteps()
  }

  /** When the signing key is to change (ms since the epoch). */
  switchAt (now = Date.now()): number | undefined {
    return switchAt(this.#stored, now, this.#options.schedule)
  }

  async #poll (): Promise<void> {
    try {
      await this.#refresh()
      if (this.#failing) this.#options.log.info({}, 'signing keys read again')
      this.#failing = false
    } catch (error) {
      // Until the store answers, the keys already read go on switching by their times.
      if (!this.#failing) this.#options.log.error({ err: { message: (error as Error).message } }, 'cannot read the signing keys; going on with those already read')
      this.#failing = true
    }
  }

  /** Reads the keys, takes the steps they are due for (after a key file's key, the next key is due at once), and adopts them. */
  async #refresh (): Promise<void> {
    let keys = await this.#options.store.list()
    for (let step = dueStep(keys, Date.now(), this.#options.schedule); step !== undefined; step = dueStep(keys, Date.now(), this.#options.schedule)) {
      keys = await this.#take(step)
    }
    this.#adopt(keys)
    this.#logSteps()
  }

  async #take (step: DueStep): Promise<StoredSigningKey[]> {
    const { store, schedule, kek, fileKey, algorithm } = this.#options
    if (step === 'expiry') {
      const lifetimeMs = (await this.#options.longestTokenLifetime()).seconds * 1000
      return await store.update((keys) => withExpiries(keys, Date.now(), lifetimeMs))
    }
    // The first key is the key file's when there is one, so the tokens it signed stay valid.
    const fromFile = step === 'first key' && fileKey !== undefined
    const key = sealKey(kek, fromFile ? fileKey : signingKeyFromPem(await generatePrivateKeyPem(algorithm), algorithm, 'a generated key'))
    const keys = await store.update((stored) => (fromFile ? withFileKey : withNewKey)(stored, Date.now(), schedule, key))
    if (keys.some((stored) => stored.kid === key.kid)) this.#createdHere.add(key.kid)
    return keys
  }

  /** Takes `keys` as this replica's, opening the private keys it has not opened yet. */
  #adopt (keys: StoredSigningKey[]): void {
    const text = JSON.stringify(keys)
    if (text === this.#storedText) return
    this.#opened = new Map(keys.map((key) => [key.kid, this.#opened.get(key.kid) ?? this.#open(key)]))
    this.#stored = keys
    this.#storedText = text
    this.#ring = undefined
  }

  #open (key: StoredSigningKey): SigningKey {
    const pem = this.#options.kek.open(key.kid, key.sealedPrivateKey)
    const opened = signingKeyFromPem(pem, key.algorithm, `the managed signing key ${key.kid}`)
    if (opened.kid !== key.kid) throw new Error(`The managed signing key stored as ${key.kid} is another key (${opened.kid})`)
    return opened
  }

  #ringAt (now: number): KeyRing {
    const current = currentKey(this.#stored, now)
    // Never without a signing key: the store always holds one once started (withNewKey, withoutKey).
    if (current === undefined) throw new Error('No managed signing key signs now')
    const published = this.#stored.filter((key) => keyState(key, now) !== 'expired')
    this.#ringUntil = Math.min(...this.#stored.flatMap((key) => [key.activatesAt, key.retiresAt ?? Infinity, key.expiresAt ?? Infinity]).filter((time) => time > now))
    return {
      signingKey: this.#opened.get(current.kid) as SigningKey,
      verificationKeys: new Map(published.map((key) => [key.kid, this.#opened.get(key.kid) as SigningKey]))
    }
  }

  /** One log line for each step a key has taken since the last: published, signing, retired, removed or revoked. */
  #logSteps (): void {
    const now = Date.now()
    const seen = new Map<string, { state: KeyState, key: StoredSigningKey }>()
    for (const key of this.#stored) {
      const state = keyState(key, now)
      seen.set(key.kid, { state, key })
      if (this.#logged.get(key.kid)?.state === state) continue
      this.#options.log.info({
        kid: key.kid,
        state,
        activatesAt: new Date(key.activatesAt).toISOString(),
        ...(key.expiresAt !== undefined ? { expiresAt: new Date(key.expiresAt).toISOString() } : {}),
        // The first line of a key this replica added: of replicas racing to add it, the one that did.
        ...(this.#createdHere.delete(key.kid) ? { createdHere: true } : {})
      }, LIFECYCLE_MESSAGES[state])
    }
    for (const [kid, { state, key }] of this.#logged) {
      if (seen.has(kid) || state === 'expired') continue
      const expired = key.expiresAt !== undefined && key.expiresAt <= now
      this.#options.log.info({ kid, state: expired ? 'expired' : 'revoked' }, LIFECYCLE_MESSAGES[expired ? 'expired' : 'revoked'])
    }
    this.#logged = seen
  }
}
