import { randomBytes } from 'node:crypto'
import argon2 from 'argon2'
import type { Config } from '../config.js'

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
  #dummyHash: Promise<string> | undefined

  constructor (parameters: Argon2Parameters) {
    this.#parameters = { ...parameters }
  }

  hash (password: string): Promise<string> {
    return argon2.hash(normalizePassword(password), { type: argon2.argon2id, ...this.#parameters })
  }

  async verify (hash: string, password: string): Promise<PasswordCheck> {
    try {
      const valid = await argon2.verify(hash, normalizePassword(password))
      return { valid, needsRehash: valid && argon2.needsRehash(hash, this.#parameters) }
    } catch {
      // A malformed stored hash matches no password; the caller answers as for a wrong one.
      return { valid: false, needsRehash: false }
    }
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
  async verifyDummy (password: string): Promise<false> {
    this.#dummyHash ??= this.hash(randomBytes(32).toString('base64'))
    await this.verify(await this.#dummyHash, password)
    return false
  }
}

/** The hasher with the configured parameters, so the server and the CLI hash alike. */
export function configuredPasswordHasher (config: Pick<Config, 'ARGON2_MEMORY_KIB' | 'ARGON2_TIME_COST' | 'ARGON2_PARALLELISM'>): PasswordHasher {
  return new PasswordHasher({
    memoryCost: config.ARGON2_MEMORY_KIB,
    timeCost: config.ARGON2_TIME_COST,
    parallelism: config.ARGON2_PARALLELISM
  })
}
