/** At most `max` attempts in any rolling window of `windowMs`. */
export interface WindowLimit {
  max: number
  windowMs: number
}

/** A rolling window's verdict: `waitMs` 0 when admitted, else until the oldest counted attempt leaves it. */
export interface WindowAdmission {
  waitMs: number
}

/**
 * How a rolling window reports an attempt, in @fastify/rate-limit's terms: `current > max` rejects
 * it, and `ttl` (ms until the oldest counted attempt leaves the window) becomes Retry-After.
 */
export type IncrCallback = (error: Error | null, result?: { current: number, ttl: number }) => void

/**
 * At most `max` attempts per key in any rolling `timeWindow`, where @fastify/rate-limit's own
 * stores use fixed windows that admit up to twice `max` around a window edge. A rejected attempt
 * is not recorded, so a client that keeps trying is let back in once its oldest attempt ages out.
 * Both twins (in Redis and in this process) follow the same rules.
 */
export interface RollingWindow {
  /** Records an attempt, if admitted. */
  incr (key: string, callback: IncrCallback, timeWindow: number, max: number): void
}

/** An attempt on a rolling window as a promise of its verdict. */
export function windowAdmission (window: RollingWindow, key: string, limit: WindowLimit): Promise<WindowAdmission> {
  return new Promise((resolve, reject) => {
    window.incr(key, (error, result) => {
      if (result === undefined) reject(error ?? new Error('rolling window answered nothing'))
      else resolve({ waitMs: result.current > limit.max ? result.ttl : 0 })
    }, limit.windowMs, limit.max)
  })
}
