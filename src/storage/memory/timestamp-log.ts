/**
 * When each counted attempt on one key was made (ms), oldest first: the in-process twin of a
 * rolling window's sorted set in Redis. Attempts that have left the window are dropped from the
 * front as a head index moves past them, and the array is compacted once the dropped ones
 * outnumber those kept, so each step costs amortized O(1) however many attempts a window holds,
 * and the log never holds more than twice the attempts still in its window.
 */
export class TimestampLog {
  readonly #at: number[] = []
  #head = 0
  /** When the newest attempt leaves its window: from then on the whole log can be dropped. */
  expiresAt = 0

  /** How many attempts were made after `now - windowMs`, dropping those made at or before it (as ZREMRANGEBYSCORE does). */
  count (now: number, windowMs: number): number {
    const at = this.#at
    while (this.#head < at.length && at[this.#head] <= now - windowMs) this.#head++
    const kept = at.length - this.#head
    if (this.#head > 0 && this.#head >= kept) {
      // Each entry moved here was passed over by the head once since the last compaction.
      at.copyWithin(0, this.#head)
      at.length = kept
      this.#head = 0
    }
    return kept
  }

  /** The oldest attempt kept, as of the last count(); undefined when none is. */
  get oldest (): number | undefined {
    return this.#at[this.#head]
  }

  /** Counts an attempt made at `now`, which leaves the window `windowMs` later. */
  record (now: number, windowMs: number): void {
    const at = this.#at
    if (at.length === this.#head || at[at.length - 1] <= now) {
      at.push(now)
    } else {
      // The clock stepped back: kept in order all the same, as the sorted set keeps it.
      let low = this.#head
      let high = at.length
      while (low < high) {
        const middle = (low + high) >>> 1
        if (at[middle] <= now) low = middle + 1
        else high = middle
      }
      at.splice(low, 0, now)
    }
    this.expiresAt = now + windowMs
  }
}
