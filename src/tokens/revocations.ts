import type { Redis } from 'ioredis'
import { ExpirySweep, SWEEP_INTERVAL_MS } from '../expiry-sweep.js'

/** Token ids (jti) revoked before they expire; each entry lives exactly as long as its token. */
export interface RevocationList {
  revoke (jti: string, expiresAt: number): Promise<void>
  isRevoked (jti: string): Promise<boolean>
}

/** Shared by every replica: a revoked token is refused everywhere at once. */
export class RedisRevocationList implements RevocationList {
  constructor (private readonly redis: Redis, private readonly keyPrefix: string) {}

  async revoke (jti: string, expiresAt: number): Promise<void> {
    await this.redis.set(this.keyPrefix + jti, '1', 'PXAT', expiresAt)
  }

  async isRevoked (jti: string): Promise<boolean> {
    return await this.redis.exists(this.keyPrefix + jti) === 1
  }
}

/** Embedded mode: one process, so a Map suffices; expired entries are dropped once a minute. */
export class LocalRevocationList implements RevocationList {
  private readonly expiries = new Map<string, number>()
  private readonly sweep = new ExpirySweep(this.expiries, (expiry) => expiry)

  async revoke (jti: string, expiresAt: number): Promise<void> {
    this.sweep.run(Date.now(), SWEEP_INTERVAL_MS)
    this.expiries.set(jti, expiresAt)
  }

  async isRevoked (jti: string): Promise<boolean> {
    return (this.expiries.get(jti) ?? 0) > Date.now()
  }
}
