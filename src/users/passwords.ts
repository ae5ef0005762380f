import { randomBytes } from 'node:crypto'
import argon2 from 'argon2'
import type { Config } from '../config.ts'
import { hashingCapacity } from './argon2-threads.ts'
import { HashingQueue, type RefusalReason } from './hashing-queue.ts'

/** The argon2id cost parameters (ARGON2_MEMORY_KIB, ARGON2_TIME_COST, ARGON2_PARALLELISM). */
export interface Argon2Parameters {
  memoryCost: number
  timeCost: number
  parallelism: number
}

export interface PasswordCheck {
  valid: boolean
  /** The stored hash was made with other parameters; only ever true for a valid password, the one moment it can be rehashed. */
  needsRehash: boolean
}

/**
 * The form a password is hashed and measured in: NFKC, so the same password typed as
 * composed or decomposed characters (or on another keyboard layout) is the same password.
 */
export function normalizePassword (password: string): string {
  return password.normalize('NFKC')
}

export class PasswordHasher {
  readonly #parameters: Argon2Parameters
  readonly #queue: HashingQueue
  #dummyHash: Promise<string> | undefined

  /** Without a queue: as many hashes at once as the process has usable cores. */
  constructor (parameters: Argon2Parameters, queue = new HashingQueue(hashingCapacity({}))) {
    this.#parameters = { ...parameters }
    this.#queue = queue
  }

  /** Verifications waiting for a hashing thread now. */
  get waiting (): number {
    return this.#queue.waiting
  }

  /**
   * Throws HashingRefused when a verification would be refused for a full queue now, so that an
   * attempt that cannot be verified is answered before it costs anything else (or counts anywhere).
   */
  refuseWhenFull (): void {
    this.#queue.refuseWhenFull()
  }

  hash (password: string): Promise<string> {
    return this.#queue.run(() => argon2.hash(normalizePassword(password), { type: argon2.argon2id, ...this.#parameters }))
  }

  /**
   * Checks a password against a stored hash. With a deadline (`performance.now()` time) it may be
   * refused with HashingRefused, before any hashing: see HashingQueue.
   */
  async verify (hash: string, password: string, deadline?: number): Promise<PasswordCheck> {
    const valid = await this.#queue.run(() => argon2.verify(hash, normalizePassword(password)).catch(() => {
      // A malformed stored hash matches no password; the caller answers as for a wrong one.
      return false
    }), deadline)
    return { valid, needsRehash: valid && argon2.needsRehash(hash, this.#parameters) }
  }

  /**
   * Makes the dummy hash (configured parameters) now, at start, so that the first unknown username
   * after a restart does not pay for hashing it on top of verifying.
   */
  async prepareDummy (): Promise<void> {
    this.#dummyHash ??= this.hash(randomBytes(32).toString('base64'))
    await this.#dummyHash
  }

  /**
   * Spends the time of a real verification and resolves false, so a login for an unknown user
   * takes as long as one with a wrong password.
   */
  async verifyDummy (password: string, deadline?: number): Promise<false> {
    this.#dummyHash ??= this.hash(randomBytes(32).toString('base64'))
    await this.verify(await this.#dummyHash, password, deadline)
    return false
  }
}

/**
 * The hasher with the configured parameters and hashing threads, so the server and the CLI hash
 * alike. `onRefused` is told of each verification refused under overload.
 */
export function configuredPasswordHasher (
  config: Pick<Config, 'ARGON2_MEMORY_KIB' | 'ARGON2_TIME_COST' | 'ARGON2_PARALLELISM' | 'ARGON2_THREADS' | 'LOGIN_QUEUE_MAX'>,
  onRefused?: (reason: RefusalReason) => void
): PasswordHasher {
  return new PasswordHasher({
    memoryCost: config.ARGON2_MEMORY_KIB,
    timeCost: config.ARGON2_TIME_COST,
    parallelism: config.ARGON2_PARALLELISM
  }, new HashingQueue({ ...hashingCapacity(config), onRefused }))
}
