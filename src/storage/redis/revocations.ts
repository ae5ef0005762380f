import { waitForReplicas, type RedisConnection } from './connection.ts'
import type { RedisKeys } from './keys.ts'
import type { RevocationList } from '../../tokens/revocations.ts'

/**
 * Shared by every replica: a revoked token is refused everywhere at once. A revocation is
 * acknowledged only once a replica has it, so a failover cannot undo it.
 */
export class RedisRevocationList implements RevocationList {
  private readonly redis: RedisConnection
  private readonly keys: RedisKeys

  constructor (redis: RedisConnection, keys: RedisKeys) {
    this.redis = redis
    this.keys = keys
  }

  async revoke (jti: string, expiresAt: number): Promise<void> {
    const key = this.keys.revocation(jti)
    await this.redis.set(key, '1', 'PXAT', expiresAt)
    await waitForReplicas(this.redis, key)
  }

  async isRevoked (jti: string): Promise<boolean> {
    return await this.redis.exists(this.keys.revocation(jti)) === 1
  }
}
