/** Why a hash was refused without being computed. */
export type RefusalReason = 'queue_full' | 'deadline'

/** A hash refused before any hashing: the queue was full, or the attempt waited past its deadline. */
export class HashingRefused extends Error {
  readonly reason: RefusalReason

  constructor (reason: RefusalReason) {
    // Expected under overload, and answered 503: no stack to capture.
    const stackTraceLimit = Error.stackTraceLimit
    Error.stackTraceLimit = 0
    super(reason === 'queue_full' ? 'too many password verifications waiting' : 'waited past its deadline')
    this.reason = reason
    Error.stackTraceLimit = stackTraceLimit
    this.name = 'HashingRefused'
  }
}

export interface HashingQueueOptions {
  /** Hashes that run at once: one per hashing thread, so a started hash never waits for a thread. */
  threads: number
  /** Bounded hashes that may wait for a thread; one more is refused at once. */
  queueMax: number
  /** Told of every refusal, to count it. */
  onRefused?: (reason: RefusalReason) => void
}

interface Waiting {
  deadline: number
  start: () => void
  refuse: (error: HashingRefused) => void
}

/**
 * Admits argon2 work to the hashing threads: at most `threads` at once, and at most `queueMax`
 * bounded ones waiting. Unbounded work (setting or rehashing a password after a successful login)
 * waits without a bound: it is never more than the logins already admitted. Deadlines are in
 * `performance.now()` time.
 */
export class HashingQueue {
  readonly threads: number
  readonly queueMax: number
  readonly #onRefused: ((reason: RefusalReason) => void) | undefined
  #running = 0
  #boundedWaiting = 0
  readonly #waiting: Waiting[] = []

  constructor ({ threads, queueMax, onRefused }: HashingQueueOptions) {
    this.threads = threads
    this.queueMax = queueMax
    this.#onRefused = onRefused
  }

  /** Hashes waiting for a thread now. */
  get waiting (): number {
    return this.#waiting.length
  }

  /** Throws HashingRefused (queue_full) when a bounded hash would be refused now: for the route to check before any other work. */
  refuseWhenFull (): void {
    if (this.#running >= this.threads && this.#boundedWaiting >= this.queueMax) throw this.#refuse('queue_full')
  }

  /**
   * Runs `work` once a thread is free. With a deadline it is bounded: refused at once when
   * `queueMax` others wait, and refused without running when its turn comes after the deadline.
   */
  async run<T> (work: () => Promise<T>, deadline?: number): Promise<T> {
    if (this.#running >= this.threads || this.#waiting.length > 0) {
      if (deadline !== undefined && this.#boundedWaiting >= this.queueMax) throw this.#refuse('queue_full')
      await this.#wait(deadline)
    } else {
      this.#running++
    }
    try {
      return await work()
    } finally {
      this.#release()
    }
  }

  #wait (deadline: number | undefined): Promise<void> {
    const bounded = deadline !== undefined
    if (bounded) this.#boundedWaiting++
    return new Promise((resolve, reject) => {
      this.#waiting.push({
        deadline: deadline ?? Infinity,
        start: () => {
          if (bounded) this.#boundedWaiting--
          resolve()
        },
        refuse: (error) => {
          if (bounded) this.#boundedWaiting--
          reject(error)
        }
      })
    })
  }

  /** Hands the thread to the next waiting hash still within its deadline. */
  #release (): void {
    const now = performance.now()
    let next = this.#waiting.shift()
    while (next !== undefined && next.deadline <= now) {
      next.refuse(this.#refuse('deadline'))
      next = this.#waiting.shift()
    }
    if (next === undefined) this.#running--
    else next.start()
  }

  #refuse (reason: RefusalReason): HashingRefused {
    this.#onRefused?.(reason)
    return new HashingRefused(reason)
  }
}
