import { createHmac, createPrivateKey, hkdfSync } from 'node:crypto'

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
 * The secret is derived (HKDF) from the JWT signing key, the one secret every replica already
 * shares: nothing else to distribute, and a key rotation starts the hashes afresh.
 */
export function keyedHashFromSigningKey (privateKeyPem: string): KeyedHash {
  const keyBytes = createPrivateKey(privateKeyPem).export({ type: 'pkcs8', format: 'der' })
  return new KeyedHash(Buffer.from(hkdfSync('sha256', keyBytes, 'auth-service', 'keyed hashes', 32)))
}
