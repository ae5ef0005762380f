import type { FastifyRateLimitStore } from '@fastify/rate-limit'
import { ExpirySweep } from './expiry-sweep.js'
import type { IncrCallback, RollingWindow } from '../../limits/rolling-window.js'

interface AttemptLog {
  /** When each admitted attempt was made (ms), oldest first. */
  timestamps: number[]
  /** When the newest attempt leaves the window, after which the log can be dropped. */
  expiresAt: number
}

/**
 * The rolling window kept in this process, for embedded mode: the same rules as the Redis script.
 * The class itself is @fastify/rate-limit's `store`: the plugin constructs it.
 */
export class LocalRollingWindowStore implements FastifyRateLimitStore, RollingWindow {
  private readonly logs = new Map<string, AttemptLog>()
  // Once per window, so memory holds only the keys seen within about two windows.
  private readonly sweep = new ExpirySweep(this.logs, (log) => log.expiresAt)

  incr (key: string, callback: IncrCallback, timeWindow: number, max: number): void {
    const now = Date.now()
    this.sweep.run(now, timeWindow)
    const timestamps = (this.logs.get(key)?.timestamps ?? []).filter((at) => at > now - timeWindow)
    // With no attempt in the window, the one being made now is the oldest.
    const oldest = timestamps[0] ?? now
    if (timestamps.length >= max) {
      // A rejected attempt is not recorded, so a client that keeps trying is still let back in.
      callback(null, { current: max + 1, ttl: Math.max(oldest + timeWindow - now, 1) })
      return
    }
    timestamps.push(now)
    this.logs.set(key, { timestamps, expiresAt: now + timeWindow })
    callback(null, { current: timestamps.length, ttl: oldest + timeWindow - now })
  }

  /** Each route with its own limit gets its own logs. */
  child (): LocalRollingWindowStore {
    return new LocalRollingWindowStore()
  }
}
