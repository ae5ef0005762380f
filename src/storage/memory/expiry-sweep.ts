/** How often a map with no window of its own (revocations, login failures) is swept. */
export const SWEEP_INTERVAL_MS = 60_000

/**
 * Keeps an in-process map of expiring entries bounded: drops the expired ones, at most once per
 * interval, so a map touched on every request is not scanned on every request.
 */
export class ExpirySweep<V> {
  private nextSweepAt = 0

  private readonly entries: Map<string, V>
  private readonly expiresAt: (entry: V) => number

  constructor (entries: Map<string, V>, expiresAt: (entry: V) => number) {
    this.entries = entries
    this.expiresAt = expiresAt
  }

  run (now: number, intervalMs: number): void {
    if (now < this.nextSweepAt) return
    for (const [key, entry] of this.entries) {
      if (this.expiresAt(entry) <= now) this.entries.delete(key)
    }
    this.nextSweepAt = now + intervalMs
  }
}
