import { waitForReplicas, type RedisConnection } from './connection.js'
import type { RedisKeys } from './keys.js'
import type { RevocationList } from '../../tokens/revocations.js'

/**
 * Shared by every replica: a revoked token is refused everywhere at once. A revocation is
 * acknowledged only once a replica has it, so a failover cannot undo it.
 */
export class RedisRevocationList implements RevocationList {
  constructor (private readonly redis: RedisConnection, private readonly keys: RedisKeys) {}

  async revoke (jti: string, expiresAt: number): Promise<void> {
    const key = this.keys.revocation(jti)
    await this.redis.set(key, '1', 'PXAT', expiresAt)
    await waitForReplicas(this.redis, key)
  }

  async isRevoked (jti: string): Promise<boolean> {
    return await this.redis.exists(this.keys.revocation(jti)) === 1
  }
}
