import { randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import type { KeyedHash } from '../tokens/keyed-hash.ts'
import { usernameKey } from '../users/repository.ts'

/** What a store needs to apply the rules: the policy, as data both twins apply alike. */
export interface ThrottlePolicy {
  threshold: number
  /** The wait set by the threshold-th failure, then by each further one; the last repeats. */
  backoffScheduleMs: number[]
  /** A failure is forgotten this long after it, or after the wait it set ends, whichever is later. */
  windowMs: number
  /** How long a client address that logged in to the account stays trusted by it. */
  trustedAddressMs: number
  /** An admitted attempt that never finished (a replica died) stops counting as in flight after this. */
  inFlightMs: number
}

/** `admitted` (trusted: judged by the address's own failures only), `wait` (retry in waitMs), or `busy`: earlier attempts must finish first. */
export type ThrottleAdmission =
  | { outcome: 'admitted', trusted: boolean }
  | { outcome: 'wait', waitMs: number }
  | { outcome: 'busy' }

export type AttemptOutcome = 'success' | 'failure' | 'abandoned'

/** Who an attempt is for and from, as keyed hashes, and which attempt it is. */
export interface AttemptIdentity {
  /** The keyed hash of the username's key. */
  account: string
  /** The keyed hash of the client address. */
  address: string
  attemptId: string
}

/**
 * Where throttle records live: Redis (shared by replicas) or this process (embedded mode). Both
 * keep, per account: the failures from addresses it does not trust (and how many came from each),
 * the wait they set; per trusted address, its own failures and wait; the trusted addresses; and the
 * attempts in flight. `admit` and `finish` are each atomic.
 */
export interface ThrottleStore {
  admit (attempt: AttemptIdentity, policy: ThrottlePolicy): Promise<ThrottleAdmission>
  finish (attempt: AttemptIdentity, trusted: boolean, outcome: AttemptOutcome, policy: ThrottlePolicy): Promise<void>
}

export interface AccountThrottleOptions {
  /** Failures before each further attempt must wait. */
  threshold: number
  /** The first wait; it doubles with every further failure... */
  baseMs: number
  /** ...up to this, so nobody can keep a real user out for longer. */
  maxMs: number
  trustedAddressDays: number
}

/** A single failure matters for an hour; a record under back-off for its wait plus an hour. */
export const FAILURE_WINDOW_MS = 60 * 60 * 1000
/** Longer than any login can take (the request timeout is 10 s). */
const IN_FLIGHT_MS = 15_000
/** How long an attempt waits for earlier ones in flight before it is told to retry: under the request timeout. */
const IN_FLIGHT_WAIT_MS = 8_000
const IN_FLIGHT_POLL_MS = 25

/** A login attempt the throttle admitted: report how it ended, exactly once. */
export interface AdmittedAttempt {
  /** 0: go ahead. Otherwise the milliseconds to wait, and nothing more to report. */
  waitMs: number
  succeed (): Promise<void>
  fail (): Promise<void>
  /** The attempt ended without an answer (Redis down...): neither success nor failure. Never throws. */
  abandon (): Promise<void>
}

/**
 * Per-account throttling against guessing from many addresses (OWASP Authentication Cheat Sheet,
 * NIST SP 800-63B rev. 4 §3.2.2): after `threshold` failures, attempts for the account wait an
 * exponentially growing, capped back-off. Designed so it cannot be turned against the account:
 * - attempts in flight are not failures: one that would pass the threshold waits for them to end;
 * - a client address (as clientAddress() gives it: an IPv6 one as its /64) that logged in to the account is trusted by it for
 *   `trustedAddressDays` and judged by its own failures only, so strangers cannot keep the owner out;
 * - a success forgets only the failures of its own address, so a guesser gains nothing from it;
 * - every submitted username is tracked alike, existing or not, under a keyed hash.
 */
export class AccountThrottle {
  private readonly policy: ThrottlePolicy

  private readonly store: ThrottleStore
  private readonly keyedHash: KeyedHash
  private readonly options: AccountThrottleOptions

  constructor (store: ThrottleStore, keyedHash: KeyedHash, options: AccountThrottleOptions) {
    this.store = store
    this.keyedHash = keyedHash
    this.options = options
    const backoffScheduleMs = [this.backoffMs(options.threshold)]
    while (backoffScheduleMs[backoffScheduleMs.length - 1] < options.maxMs) {
      backoffScheduleMs.push(this.backoffMs(options.threshold + backoffScheduleMs.length))
    }
    this.policy = {
      threshold: options.threshold,
      backoffScheduleMs,
      windowMs: FAILURE_WINDOW_MS,
      trustedAddressMs: options.trustedAddressDays * 24 * 60 * 60 * 1000,
      inFlightMs: IN_FLIGHT_MS
    }
  }

  /** Admits an attempt for the username from the client address (see clientAddress()), waiting briefly for attempts in flight. */
  async admit (username: string, clientAddress: string): Promise<AdmittedAttempt> {
    const attempt: AttemptIdentity = {
      account: this.keyedHash.digest('account', usernameKey(username)),
      address: this.keyedHash.digest('client', clientAddress),
      attemptId: randomUUID()
    }
    const deadline = Date.now() + IN_FLIGHT_WAIT_MS
    let admission = await this.store.admit(attempt, this.policy)
    while (admission.outcome === 'busy' && Date.now() < deadline) {
      await sleep(IN_FLIGHT_POLL_MS)
      admission = await this.store.admit(attempt, this.policy)
    }
    if (admission.outcome !== 'admitted') {
      const waitMs = admission.outcome === 'wait' ? admission.waitMs : 1000
      return { waitMs, succeed: async () => {}, fail: async () => {}, abandon: async () => {} }
    }
    const finish = async (outcome: AttemptOutcome) => { await this.store.finish(attempt, admission.trusted, outcome, this.policy) }
    return {
      waitMs: 0,
      succeed: async () => { await finish('success') },
      fail: async () => { await finish('failure') },
      // An in-flight entry that cannot be removed now stops counting after inFlightMs anyway.
      abandon: async () => { await finish('abandoned').catch(() => {}) }
    }
  }

  /** The wait after the given number of failures (at least threshold). */
  backoffMs (failures: number): number {
    const { threshold, baseMs, maxMs } = this.options
    return Math.min(baseMs * 2 ** Math.min(failures - threshold, 30), maxMs)
  }
}

/** The wait a failure count sets (at least threshold), from the schedule both twins share. */
export function scheduledWaitMs (failures: number, { threshold, backoffScheduleMs }: ThrottlePolicy): number {
  return backoffScheduleMs[Math.min(failures - threshold, backoffScheduleMs.length - 1)]
}
