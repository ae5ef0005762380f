import { randomUUID } from 'node:crypto'
import type { FastifyRateLimitStore } from '@fastify/rate-limit'
import type { RouteOptions } from 'fastify'
import type { RedisConnection } from './connection.ts'
import { BlockedKeys } from '../memory/blocked-keys.ts'
import type { IncrCallback, RollingWindow } from '../../limits/rolling-window.ts'

/**
 * KEYS[1]: the key's log, a sorted set of admitted attempts scored by when they were made (ms).
 * ARGV: timeWindow (ms), max, a unique id for this attempt.
 * Returns { current, ttl } with the same rules as LocalRollingWindowStore.
 */
const ROLLING_WINDOW_SCRIPT = `#!lua
-- The line above (Redis 7) makes Redis refuse the script while it is out of memory; without it the
-- ZREMRANGEBYSCORE below counts as the script's first write and the ZADD may go past maxmemory.
local key = KEYS[1]
local timeWindow = tonumber(ARGV[1])
local max = tonumber(ARGV[2])

-- Redis's clock rather than the caller's, so replicas with skewed clocks agree on the window.
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)

redis.call('ZREMRANGEBYSCORE', key, '-inf', now - timeWindow)
local count = redis.call('ZCARD', key)
-- With no attempt in the window, the one being made now is the oldest.
local oldest = tonumber(redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')[2]) or now
if count >= max then
  -- A rejected attempt is not recorded, so a client that keeps trying is still let back in.
  return {max + 1, math.max(oldest + timeWindow - now, 1)}
end

redis.call('ZADD', key, now, ARGV[3])
-- The log vanishes once its newest attempt has left the window.
redis.call('PEXPIRE', key, timeWindow)
return {count + 1, oldest + timeWindow - now}
`

/** ioredis adds a method for each command defined with defineCommand. */
export type RedisWithRollingWindow = RedisConnection & {
  rollingWindowIncr (key: string, timeWindow: number, max: number, attemptId: string): Promise<[number, number]>
}

/** Defines the rolling-window script on a connection, for stores and for pipelines that run it beside other commands. */
export function withRollingWindow (redis: RedisConnection): RedisWithRollingWindow {
  // Through defineCommand so ioredis sends EVALSHA and falls back to EVAL when Redis has lost
  // the script (a restart); defining it again only replaces it with itself.
  redis.defineCommand('rollingWindowIncr', { numberOfKeys: 1, lua: ROLLING_WINDOW_SCRIPT })
  return redis as RedisWithRollingWindow
}

/** The route that child() derives its store for. */
interface RouteRateLimitParams {
  routeInfo: Pick<RouteOptions, 'method' | 'url'>
}

/** The Redis key of a window: its store's key (a client address, say), and the route of a route's own limit. */
export type WindowKey = (key: string, route?: string) => string

/** The rolling window in Redis, shared by every replica. */
export class RedisRollingWindowStore implements FastifyRateLimitStore, RollingWindow {
  private readonly redis: RedisWithRollingWindow
  private readonly windowKey: WindowKey
  private readonly route: string | undefined
  /** Keys Redis rejected: until they may be admitted again, this replica answers from memory, and a client hammering the limit costs no Redis round trip. */
  private readonly blocked = new BlockedKeys()

  constructor (redis: RedisConnection, windowKey: WindowKey, route?: string) {
    this.redis = withRollingWindow(redis)
    this.windowKey = windowKey
    this.route = route
  }

  incr (key: string, callback: IncrCallback, timeWindow: number, max: number): void {
    const now = Date.now()
    const retryAfterMs = this.blocked.retryAfterMs(key, now, timeWindow)
    if (retryAfterMs > 0) {
      callback(null, { current: max + 1, ttl: retryAfterMs })
      return
    }
    this.redis.rollingWindowIncr(this.windowKey(key, this.route), timeWindow, max, randomUUID()).then(
      ([current, ttl]) => {
        // From the time the attempt was sent, so the block never outlasts the one Redis computed.
        if (current > max) this.blocked.block(key, now, ttl)
        callback(null, { current, ttl })
      },
      callback
    )
  }

  /** Each route with its own limit counts under its own keys. */
  child (routeOptions: Parameters<FastifyRateLimitStore['child']>[0]): RedisRollingWindowStore {
    // The plugin's typings say RouteOptions, but it passes the route's merged rate-limit params,
    // which hold the route under routeInfo.
    const { routeInfo } = routeOptions as unknown as RouteRateLimitParams
    return new RedisRollingWindowStore(this.redis, this.windowKey, `${routeInfo.method}${routeInfo.url}`)
  }
}
