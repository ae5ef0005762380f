import { ExpirySweep } from './expiry-sweep.ts'

/**
 * Keys a rolling window rejected, and until when (ms). A rejected attempt is not recorded, so
 * nothing can admit the key again before the oldest counted attempt ages out: until then the
 * answer is known without asking the window again. (An operator deleting a key in Redis to
 * unblock a client takes effect once this time has passed.)
 */
export class BlockedKeys {
  readonly #until = new Map<string, number>()
  readonly #sweep = new ExpirySweep(this.#until, (until) => until)

  /** Remembers that `key` stays rejected for `ttlMs` from `now`. */
  block (key: string, now: number, ttlMs: number): void {
    this.#until.set(key, now + ttlMs)
  }

  /** How long `key` stays rejected from `now`, 0 when it is not known to be. Expired keys are swept once per `sweepIntervalMs`. */
  retryAfterMs (key: string, now: number, sweepIntervalMs: number): number {
    this.#sweep.run(now, sweepIntervalMs)
    return Math.max((this.#until.get(key) ?? 0) - now, 0)
  }
}
