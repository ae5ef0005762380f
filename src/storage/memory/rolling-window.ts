import type { FastifyRateLimitStore } from '@fastify/rate-limit'
import { ExpirySweep } from './expiry-sweep.ts'
import { TimestampLog } from './timestamp-log.ts'
import type { IncrCallback, RollingWindow } from '../../limits/rolling-window.ts'

/**
 * The rolling window kept in this process, for embedded mode: the same rules as the Redis script.
 * The class itself is @fastify/rate-limit's `store`: the plugin constructs it.
 */
export class LocalRollingWindowStore implements FastifyRateLimitStore, RollingWindow {
  /** Each key's admitted attempts. */
  private readonly logs = new Map<string, TimestampLog>()
  // Once per window, so memory holds only the keys seen within about two windows.
  private readonly sweep = new ExpirySweep(this.logs, (log) => log.expiresAt)

  incr (key: string, callback: IncrCallback, timeWindow: number, max: number): void {
    const now = Date.now()
    this.sweep.run(now, timeWindow)
    const log = this.logs.get(key) ?? new TimestampLog()
    const count = log.count(now, timeWindow)
    // With no attempt in the window, the one being made now is the oldest.
    const oldest = log.oldest ?? now
    if (count >= max) {
      // A rejected attempt is not recorded, so a client that keeps trying is still let back in.
      callback(null, { current: max + 1, ttl: Math.max(oldest + timeWindow - now, 1) })
      return
    }
    log.record(now, timeWindow)
    this.logs.set(key, log)
    callback(null, { current: count + 1, ttl: oldest + timeWindow - now })
  }

  /** Each route with its own limit gets its own logs. */
  child (): LocalRollingWindowStore {
    return new LocalRollingWindowStore()
  }
}
