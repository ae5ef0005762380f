import { createHash } from 'node:crypto'
import { ExpirySweep, SWEEP_INTERVAL_MS } from '../expiry-sweep.js'
import { usernameKey } from '../users/repository.js'

/** Consecutive failed logins for one username, and when it may be tried again (Unix ms). */
export interface FailureRecord {
  failures: number
  retryAt: number
}

/** Where failure records live: Redis (shared by replicas) or this process (embedded mode). */
export interface FailureStore {
  get (key: string): Promise<FailureRecord | undefined>
  /** Counts one more failure, remembered for `memoryMs` after the latest; returns the new count. */
  addFailure (key: string, memoryMs: number): Promise<number>
  setRetryAt (key: string, retryAt: number): Promise<void>
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

/** Failures older than this are forgotten even without a successful login. */
const FAILURE_MEMORY_MS = 24 * 60 * 60 * 1000
/**
 * Per-username throttling against credential stuffing from many IPs (OWASP Authentication Cheat
 * Sheet, NIST SP 800-63B rate limiting): after `threshold` consecutive failures, attempts for the
 * username wait an exponentially growing, capped back-off; a success resets it. Every submitted
 * username is tracked alike, existing or not, so the throttle reveals nothing about accounts.
 */
export class AccountThrottle {
  constructor (private readonly store: FailureStore, private readonly options: AccountThrottleOptions) {}

  /** Milliseconds until the username may be tried again; 0 when it may be now. */
  async retryAfterMs (username: string): Promise<number> {
    const record = await this.store.get(throttleKey(username))
    return Math.max((record?.retryAt ?? 0) - Date.now(), 0)
  }

  async recordFailure (username: string): Promise<void> {
    const key = throttleKey(username)
    const failures = await this.store.addFailure(key, FAILURE_MEMORY_MS)
    if (failures >= this.options.threshold) await this.store.setRetryAt(key, Date.now() + this.backoffMs(failures))
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

/** Embedded mode: the records in a Map, forgotten ones dropped once a minute. */
export class LocalFailureStore implements FailureStore {
  private readonly records = new Map<string, FailureRecord & { forgetAt: number }>()
  private readonly sweep = new ExpirySweep(this.records, (record) => record.forgetAt)

  async get (key: string): Promise<FailureRecord | undefined> {
    const record = this.records.get(key)
    return record !== undefined && record.forgetAt > Date.now() ? record : undefined
  }

  async addFailure (key: string, memoryMs: number): Promise<number> {
    const now = Date.now()
    this.sweep.run(now, SWEEP_INTERVAL_MS)
    const failures = ((await this.get(key))?.failures ?? 0) + 1
    this.records.set(key, { failures, retryAt: this.records.get(key)?.retryAt ?? 0, forgetAt: now + memoryMs })
    return failures
  }

  async setRetryAt (key: string, retryAt: number): Promise<void> {
    const record = this.records.get(key)
    if (record !== undefined) record.retryAt = retryAt
  }

  async clear (key: string): Promise<void> {
    this.records.delete(key)
  }
}
