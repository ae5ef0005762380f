import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto'

/** The length of the key-encryption key and of the keys derived from it. */
export const KEY_ENCRYPTION_KEY_BYTES = 32
const IV_BYTES = 12
const TAG_BYTES = 16
/** The format of a sealed key, so another one can be told apart later. */
const SEALED_PREFIX = 'A256GCM'

/** A sealed key that does not open with this key-encryption key: another KEK sealed it, or it was altered. */
export class WrongKeyEncryptionKeyError extends Error {
  constructor (kid: string) {
    super(`JWT_KEY_ENCRYPTION_KEY_FILE does not hold the key that encrypted the managed signing key ${kid}: every replica needs the same key-encryption key`)
    this.name = 'WrongKeyEncryptionKeyError'
  }
}

/**
 * The key-encryption key (KEK) of managed signing keys, from JWT_KEY_ENCRYPTION_KEY_FILE. Private
 * keys are stored sealed under it (AES-256-GCM, authenticated, bound to their kid), so the store
 * holds only ciphertext. Its own bytes are used for nothing directly: HKDF derives one key for
 * sealing and one for the keyed hash.
 */
export class KeyEncryptionKey {
  readonly #sealingKey: Buffer
  /** Input for the keyed hash's secret (keyed-hash.ts): as stable as the KEK, whatever the keys' rotations. */
  readonly keyedHashInput: Buffer

  constructor (bytes: Buffer) {
    this.#sealingKey = Buffer.from(hkdfSync('sha256', bytes, 'auth-service', 'managed signing keys', KEY_ENCRYPTION_KEY_BYTES))
    this.keyedHashInput = Buffer.from(hkdfSync('sha256', bytes, 'auth-service', 'keyed hash input', KEY_ENCRYPTION_KEY_BYTES))
  }

  /** `secret` (a PEM private key) sealed for the key `kid`: `A256GCM.<iv>.<ciphertext>.<tag>`, base64url. */
  seal (kid: string, secret: string): string {
    const iv = randomBytes(IV_BYTES)
    const cipher = createCipheriv('aes-256-gcm', this.#sealingKey, iv).setAAD(Buffer.from(kid))
    const ciphertext = Buffer.concat([cipher.update(secret, 'utf8'), cipher.final()])
    return [SEALED_PREFIX, iv, ciphertext, cipher.getAuthTag()].map((part) => typeof part === 'string' ? part : part.toString('base64url')).join('.')
  }

  /** What `seal` sealed for `kid`; throws WrongKeyEncryptionKeyError when it does not open. */
  open (kid: string, sealed: string): string {
    const [prefix, iv, ciphertext, tag, ...rest] = sealed.split('.')
    try {
      if (prefix !== SEALED_PREFIX || rest.length > 0) throw new Error('not a sealed key')
      const decipher = createDecipheriv('aes-256-gcm', this.#sealingKey, Buffer.from(iv, 'base64url'), { authTagLength: TAG_BYTES })
        .setAAD(Buffer.from(kid))
        .setAuthTag(Buffer.from(tag, 'base64url'))
      return Buffer.concat([decipher.update(Buffer.from(ciphertext, 'base64url')), decipher.final()]).toString('utf8')
    } catch {
      throw new WrongKeyEncryptionKeyError(kid)
    }
  }
}
