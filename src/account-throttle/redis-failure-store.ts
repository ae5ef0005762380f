import type { Redis } from 'ioredis'
import type { FailureRecord, FailureStore } from './account-throttle.js'

/** Failure records shared by every replica: one hash per (hashed) username, expiring on its own. */
export class RedisFailureStore implements FailureStore {
  constructor (private readonly redis: Redis, private readonly keyPrefix: string) {}

  async get (key: string): Promise<FailureRecord | undefined> {
    const [failures, retryAt] = await this.redis.hmget(this.keyPrefix + key, 'failures', 'retryAt')
    return failures === null ? undefined : { failures: Number(failures), retryAt: Number(retryAt ?? 0) }
  }

  async addFailure (key: string, memoryMs: number): Promise<number> {
    const results = await this.redis.multi()
      .hincrby(this.keyPrefix + key, 'failures', 1)
      .pexpire(this.keyPrefix + key, memoryMs)
      .exec()
    const [error, failures] = results?.[0] ?? [new Error('Redis transaction was aborted')]
    if (error !== null && error !== undefined) throw error
    return Number(failures)
  }

  async setRetryAt (key: string, retryAt: number): Promise<void> {
    await this.redis.hset(this.keyPrefix + key, 'retryAt', retryAt)
  }

  async clear (key: string): Promise<void> {
    await this.redis.del(this.keyPrefix + key)
  }
}
