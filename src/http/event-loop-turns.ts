/**
 * Lets the requests of a costly route go on one per turn of the event loop. Requests that arrive
 * together (a burst of logins on new connections) are read in one batch, and run to their answer
 * (or to their first wait) one after another before the loop polls again: a probe behind them would
 * wait for the whole batch. Through a turn each, every other request is read and answered between
 * two of them.
 */
export class EventLoopTurns {
  readonly #waiting: Array<() => void> = []
  #scheduled = false

  /** Calls `go` in a turn of its own, after those waiting before it. */
  take (go: () => void): void {
    this.#waiting.push(go)
    this.#schedule()
  }

  #schedule (): void {
    if (this.#scheduled) return
    this.#scheduled = true
    setImmediate(() => {
      this.#scheduled = false
      try {
        this.#waiting.shift()?.()
      } finally {
        // Scheduled after it went on, so what it left for the next turn goes before the next one.
        if (this.#waiting.length > 0) this.#schedule()
      }
    })
  }
}
