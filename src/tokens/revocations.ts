import { waitForReplicas, type RedisConnection } from '../storage/redis/connection.js'
import { ExpirySweep, SWEEP_INTERVAL_MS } from '../storage/memory/expiry-sweep.js'

/** Token ids (jti) revoked before they expire; each entry lives exactly as long as its token. */
export interface RevocationList {
  revoke (jti: string, expiresAt: number): Promise<void>
  isRevoked (jti: string): Promise<boolean>
}

/**
 * Shared by every replica: a revoked token is refused everywhere at once. State that must survive:
 * a revocation is acknowledged only once a replica has it, so a failover cannot undo it.
 */
export class RedisRevocationList implements RevocationList {
  constructor (private readonly redis: RedisConnection, private readonly keyPrefix: string) {}

  async revoke (jti: string, expiresAt: number): Promise<void> {
    const key = this.keyPrefix + jti
    await this.redis.set(key, '1', 'PXAT', expiresAt)
    await waitForReplicas(this.redis, key)
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
