import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import { authKind, type Client, type ClientSecret } from './client.ts'

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

/**
 * A client that declares no way to authenticate is a secret client: it gets a new secret, of which
 * only the digest is kept, and the secret is returned to be shown once (`clients add`, the admin API).
 */
export function withGeneratedSecret (client: Client, now: number): { client: Client, secret?: string } {
  if (authKind(client) !== 'client_secret' || client.secrets !== undefined) return { client }
  const secret = generateSecret()
  return { client: { ...client, secrets: [{ digest: secretDigest(secret), createdAt: now }] }, secret }
}

/** A rotation or retirement the client's secrets do not allow: the message says why. */
export class SecretRotationError extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'SecretRotationError'
  }
}

/** Secrets still in force at `now`. */
export function activeSecrets (secrets: readonly ClientSecret[] | undefined, now: number): ClientSecret[] {
  return (secrets ?? []).filter((secret) => secret.expiresAt === undefined || secret.expiresAt > now)
}

/**
 * The client with a new secret (its digest) beside the one in force, which stops working
 * `oldExpiresInSeconds` from now, or when its secrets are retired when that is undefined. Two at a
 * time: the one being rotated out and the new one.
 */
export function withRotatedSecret (client: Client, digest: string, now: number, oldExpiresInSeconds?: number): Client {
  if (client.secrets === undefined) throw new SecretRotationError(`Client "${client.clientId}" authenticates without a secret; there is nothing to rotate`)
  const current = activeSecrets(client.secrets, now)
  if (current.length > 1) throw new SecretRotationError(`Client "${client.clientId}" is already in a rotation; retire its older secret first`)
  const old = current.map((stored) => oldExpiresInSeconds === undefined ? stored : { ...stored, expiresAt: now + oldExpiresInSeconds * 1000 })
  return { ...client, secrets: [...old, { digest, createdAt: now }], updatedAt: now }
}

/** The client with only its newest secret in force. */
export function withRetiredSecrets (client: Client, now: number): Client {
  const current = activeSecrets(client.secrets, now)
  if (current.length < 2) throw new SecretRotationError(`Client "${client.clientId}" has no older secret to retire`)
  return { ...client, secrets: [current[current.length - 1]], updatedAt: now }
}
