import { createHmac, createPrivateKey, hkdfSync } from 'node:crypto'
import type { KeySource } from './keys.ts'

/**
 * HMAC-SHA-256 with a secret of the deployment, for values that must be recognisable again but
 * never stored or logged in clear (usernames, client addresses): without the secret, a key in
 * Redis or a hash in a log cannot be matched against a list of likely usernames.
 */
export class KeyedHash {
  readonly #secret: Buffer

  constructor (secret: Buffer) {
    this.#secret = secret
  }

  /** base64url of the first `bytes` bytes; `purpose` keeps the hashes of one value for different uses apart. */
  digest (purpose: string, value: string, bytes = 16): string {
    return createHmac('sha256', this.#secret).update(`${purpose}\0${value}`).digest().subarray(0, bytes).toString('base64url')
  }
}

/**
 * The secret is derived (HKDF) from a secret every replica already shares, so there is nothing
 * more to distribute: with key files the signing key (a key rotation starts the hashes afresh);
 * with managed keys the key-encryption key, because their signing keys change at every rotation.
 */
export function keyedHashOf (keys: KeySource): KeyedHash {
  const input = keys.managed
    ? keys.kek.keyedHashInput
    : createPrivateKey(keys.keyRing.signingKey.privateKeyPem).export({ type: 'pkcs8', format: 'der' })
  return new KeyedHash(Buffer.from(hkdfSync('sha256', input, 'auth-service', 'keyed hashes', 32)))
}
