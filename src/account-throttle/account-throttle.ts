import { createHash } from 'node:crypto'
import { ExpirySweep, SWEEP_INTERVAL_MS } from '../expiry-sweep.js'
import { usernameKey } from '../users/repository.js'

/** What a store needs to admit an attempt: the policy, as data both twins apply alike. */
export interface ThrottlePolicy {
  threshold: number
  /** The wait set by the threshold-th consecutive failure, then by each further one; the last repeats. */
  backoffScheduleMs: number[]
  /** Failures this long after the latest are forgotten, even without a successful login. */
  memoryMs: number
}

/**
 * Where failure counts live: Redis (shared by replicas) or this process (embedded mode). `admit`
 * is atomic: it refuses while the username must wait, and otherwise counts the attempt as a
 * failure before its password is even checked (a success clears it), so a burst of concurrent
 * attempts cannot all slip in before the first failures are recorded.
 */
export interface FailureStore {
  /** 0 when the attempt may go ahead (and is counted), else the milliseconds left to wait. */
  admit (key: string, policy: ThrottlePolicy): Promise<number>
  clear (key: string): Promise<void>
}

export interface AccountThrottleOptions {
  /** Consecutive failures before each further attempt must wait. */
  threshold: number
  /** The first wait; it doubles with every further failure... */
  baseMs: number
  /** ...up to this, so nobody can lock a real user out for longer. */
  maxMs: number
}

const FAILURE_MEMORY_MS = 24 * 60 * 60 * 1000

/**
 * Per-username throttling against credential stuffing from many IPs (OWASP Authentication Cheat
 * Sheet, NIST SP 800-63B rate limiting): after `threshold` consecutive failures, attempts for the
 * username wait an exponentially growing, capped back-off; a success resets it. Every submitted
 * username is tracked alike, existing or not, so the throttle reveals nothing about accounts.
 */
export class AccountThrottle {
  private readonly policy: ThrottlePolicy

  constructor (private readonly store: FailureStore, private readonly options: AccountThrottleOptions) {
    const backoffScheduleMs = [this.backoffMs(options.threshold)]
    while (backoffScheduleMs[backoffScheduleMs.length - 1] < options.maxMs) {
      backoffScheduleMs.push(this.backoffMs(options.threshold + backoffScheduleMs.length))
    }
    this.policy = { threshold: options.threshold, backoffScheduleMs, memoryMs: FAILURE_MEMORY_MS }
  }

  /** 0 when an attempt for the username may go ahead now, else the milliseconds left to wait. */
  async admit (username: string): Promise<number> {
    return await this.store.admit(throttleKey(username), this.policy)
  }

  async recordSuccess (username: string): Promise<void> {
    await this.store.clear(throttleKey(username))
  }

  /** The wait after the given number of consecutive failures (at least threshold). */
  backoffMs (failures: number): number {
    const { threshold, baseMs, maxMs } = this.options
    return Math.min(baseMs * 2 ** Math.min(failures - threshold, 30), maxMs)
  }
}

/**
 * Hashed, so a password typed into the username field by mistake is never stored in clear.
 * Case and NFKC variants of a username are one key, as they are one account.
 */
function throttleKey (username: string): string {
  return createHash('sha256').update(usernameKey(username)).digest('base64url')
}

interface FailureRecord {
  failures: number
  /** Until when (Unix ms) attempts must wait. */
  retryAt: number
  forgetAt: number
}

/** Embedded mode: the same rules as the Redis script, in a Map; forgotten records dropped once a minute. */
export class LocalFailureStore implements FailureStore {
  private readonly records = new Map<string, FailureRecord>()
  private readonly sweep = new ExpirySweep(this.records, (record) => record.forgetAt)

  async admit (key: string, { threshold, backoffScheduleMs, memoryMs }: ThrottlePolicy): Promise<number> {
    const now = Date.now()
    this.sweep.run(now, SWEEP_INTERVAL_MS)
    const record = this.records.get(key)
    const current = record !== undefined && record.forgetAt > now ? record : { failures: 0, retryAt: 0, forgetAt: 0 }
    if (current.retryAt > now) return current.retryAt - now
    const failures = current.failures + 1
    const step = Math.min(failures - threshold, backoffScheduleMs.length - 1)
    const retryAt = failures >= threshold ? now + backoffScheduleMs[step] : current.retryAt
    this.records.set(key, { failures, retryAt, forgetAt: now + memoryMs })
    return 0
  }

  async clear (key: string): Promise<void> {
    this.records.delete(key)
  }
}
