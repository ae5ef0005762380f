import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import type { ClientSecret } from './client.js'

/** 256 bits: far beyond guessing, so a fast digest protects it as well as a slow hash would. */
const SECRET_BYTES = 32

/** A new client secret, base64url (43 characters). Shown once; only its digest is stored. */
export function generateSecret (): string {
  return randomBytes(SECRET_BYTES).toString('base64url')
}

/**
 * SHA-256 of the secret, base64url. A random 256-bit secret cannot be brute-forced from its
 * digest, so argon2 would add nothing but a cap on the grant rate.
 */
export function secretDigest (secret: string): string {
  return createHash('sha256').update(secret).digest('base64url')
}

/** Whether `secret` matches one of the secrets still in force, comparing digests in constant time. */
export function matchesSecret (secrets: readonly ClientSecret[], secret: string, now: number): boolean {
  const presented = createHash('sha256').update(secret).digest()
  let matched = false
  // Every secret is compared, so the time taken does not tell which one matched.
  for (const stored of secrets) {
    const digest = Buffer.from(stored.digest, 'base64url')
    const equal = digest.length === presented.length && timingSafeEqual(digest, presented)
    if (equal && (stored.expiresAt === undefined || stored.expiresAt > now)) matched = true
  }
  return matched
}
