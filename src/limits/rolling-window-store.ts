import type { FastifyRateLimitStore, FastifyRateLimitStoreCtor } from '@fastify/rate-limit'
import type { RedisConnection } from '../storage/redis/connection.js'
import { LocalRollingWindowStore } from '../storage/memory/rolling-window.js'
import { RedisRollingWindowStore } from '../storage/redis/rolling-window.js'

/**
 * How a store reports a login attempt to @fastify/rate-limit: `current > max` rejects it,
 * and `ttl` (ms until the oldest counted attempt leaves the window) becomes Retry-After.
 */
export type IncrCallback = Parameters<FastifyRateLimitStore['incr']>[1]

export interface RollingWindowStoreOptions {
  /** The shared Redis client; without one the limit is kept in this process only (embedded mode). */
  redis?: RedisConnection
  /** Namespaces the Redis keys, e.g. `${REDIS_KEY_PREFIX}rate-limit:`. */
  keyPrefix: string
}

/**
 * The store class to pass as @fastify/rate-limit's `store` option: at most `max` login attempts
 * per key in any rolling `timeWindow`, where the plugin's own stores use fixed windows that
 * admit up to twice `max` around a window edge.
 */
export function rollingWindowStore ({ redis, keyPrefix }: RollingWindowStoreOptions): FastifyRateLimitStoreCtor {
  return redis === undefined ? LocalRollingWindowStore : redisStoreBoundTo(redis, keyPrefix)
}

/** The plugin constructs the store itself, passing only its own options, so the client is bound beforehand. */
function redisStoreBoundTo (redis: RedisConnection, keyPrefix: string): FastifyRateLimitStoreCtor {
  return class extends RedisRollingWindowStore {
    constructor () {
      super(redis, keyPrefix)
    }
  }
}
