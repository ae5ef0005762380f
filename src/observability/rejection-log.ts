/** Rejected login attempts from one client address in one interval that are not logged one by one. */
export interface RejectionSummary {
  /** The client address, or undefined for addresses beyond the tracked maximum, summed together. */
  clientIp: string | undefined
  /** Rejections not logged one by one, by outcome. */
  outcomes: Record<string, number>
  intervalMs: number
}

/**
 * Per client address and minute, the first 10 rejected login attempts are logged one by one: more
 * than the per-IP limit lets through, so a client that merely hits the limit is logged as before.
 * 10,000 addresses a minute bound the memory: a few MiB at most.
 */
export const REJECTION_LOG_LIMITS = { firstPerInterval: 10, intervalMs: 60_000, maxAddresses: 10_000 }

export interface RejectionLogOptions {
  /** Rejections per client address and interval logged one by one, as any attempt is. */
  firstPerInterval: number
  intervalMs: number
  /** Client addresses tracked per interval; rejections from further ones are summed together. */
  maxAddresses: number
  /** Writes one summary line. */
  write: (summary: RejectionSummary) => void
}

interface AddressCount {
  logged: number
  suppressed: Record<string, number> | undefined
}

/**
 * Keeps a flood of rejected login attempts from becoming a flood of log lines: per client address,
 * the first `firstPerInterval` rejections of an interval are logged as usual, and the rest are
 * counted and written as one summary line per address when the interval ends (or the log is
 * closed). Memory stays bounded: at most `maxAddresses` addresses per interval, the rest share
 * one count. Metrics are not affected: they count every attempt.
 */
export class RejectionLog {
  readonly #options: RejectionLogOptions
  #addresses = new Map<string, AddressCount>()
  #overflow: Record<string, number> | undefined
  readonly #timer: NodeJS.Timeout

  constructor (options: RejectionLogOptions) {
    this.#options = options
    this.#timer = setInterval(() => this.flush(), options.intervalMs)
    // A summary due later must not keep a stopping process alive; close() writes it.
    this.#timer.unref()
  }

  /** Whether to log this rejection line by line; when false it is counted for the summary instead. */
  admit (clientIp: string, outcome: string): boolean {
    let count = this.#addresses.get(clientIp)
    if (count === undefined) {
      if (this.#addresses.size >= this.#options.maxAddresses) {
        this.#overflow = addOutcome(this.#overflow, outcome)
        return false
      }
      count = { logged: 0, suppressed: undefined }
      this.#addresses.set(clientIp, count)
    }
    if (count.logged < this.#options.firstPerInterval) {
      count.logged++
      return true
    }
    count.suppressed = addOutcome(count.suppressed, outcome)
    return false
  }

  /** Writes the summary of the interval so far and starts a new one. */
  flush (): void {
    const { intervalMs, write } = this.#options
    for (const [clientIp, { suppressed }] of this.#addresses) {
      if (suppressed !== undefined) write({ clientIp, outcomes: suppressed, intervalMs })
    }
    if (this.#overflow !== undefined) write({ clientIp: undefined, outcomes: this.#overflow, intervalMs })
    this.#addresses = new Map()
    this.#overflow = undefined
  }

  close (): void {
    clearInterval(this.#timer)
    this.flush()
  }
}

function addOutcome (outcomes: Record<string, number> | undefined, outcome: string): Record<string, number> {
  const counts = outcomes ?? {}
  counts[outcome] = (counts[outcome] ?? 0) + 1
  return counts
}
