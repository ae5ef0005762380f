import { ExpirySweep, SWEEP_INTERVAL_MS } from './expiry-sweep.ts'
import { scheduledWaitMs, type ThrottleAdmission, type AttemptIdentity, type AttemptOutcome, type ThrottlePolicy, type ThrottleStore } from '../../limits/account-throttle.ts'

/** One account's records, the same fields as the Redis hash, each map dropped when it expires. */
interface Expiring<T> {
  value: T
  expiresAt: number
}

/** The fields of an account's failure record: `failures`, `retryAt`, `from:<address>`, `failures:<address>`, `retryAt:<address>`. */
type FailureRecord = Map<string, number>

/** Embedded mode: the same rules as the Redis scripts (storage/redis/account-throttle.ts), in Maps swept once a minute. */
export class LocalThrottleStore implements ThrottleStore {
  private readonly failures = new Map<string, Expiring<FailureRecord>>()
  /** Per account: trusted address -> until when. */
  private readonly trusted = new Map<string, Expiring<Map<string, number>>>()
  /** Per account: `<scope> <attemptId>` -> until when it counts as in flight. */
  private readonly inFlight = new Map<string, Expiring<Map<string, number>>>()
  private readonly sweeps = [this.failures, this.trusted, this.inFlight].map((map) => new ExpirySweep<Expiring<unknown>>(map, (entry) => entry.expiresAt))

  async admit ({ account, address, attemptId }: AttemptIdentity, policy: ThrottlePolicy): Promise<ThrottleAdmission> {
    const now = Date.now()
    for (const sweep of this.sweeps) sweep.run(now, SWEEP_INTERVAL_MS)
    const trusted = (live(this.trusted.get(account), now)?.get(address) ?? 0) > now
    const scope = trusted ? address : 'account'
    const record = live(this.failures.get(account), now)
    const retryAt = record?.get(trusted ? `retryAt:${address}` : 'retryAt') ?? 0
    if (retryAt > now) return { outcome: 'wait', waitMs: retryAt - now }
    const failures = record?.get(trusted ? `failures:${address}` : 'failures') ?? 0
    const inFlight = live(this.inFlight.get(account), now) ?? new Map<string, number>()
    let pending = 0
    for (const [member, until] of inFlight) {
      if (until <= now) inFlight.delete(member)
      else if (member.startsWith(`${scope} `)) pending++
    }
    // Below the threshold, as many attempts as it has room for; past it, one at a time.
    if (pending >= Math.max(policy.threshold - failures, 1)) return { outcome: 'busy' }
    inFlight.set(`${scope} ${attemptId}`, now + policy.inFlightMs)
    this.inFlight.set(account, { value: inFlight, expiresAt: now + policy.inFlightMs })
    return { outcome: 'admitted', trusted }
  }

  async finish ({ account, address, attemptId }: AttemptIdentity, trusted: boolean, outcome: AttemptOutcome, policy: ThrottlePolicy): Promise<void> {
    const now = Date.now()
    live(this.inFlight.get(account), now)?.delete(`${trusted ? address : 'account'} ${attemptId}`)
    if (outcome === 'abandoned') return
    const entry = this.failures.get(account)
    const record = live(entry, now) ?? new Map<string, number>()
    let expiresAt = entry !== undefined && entry.expiresAt > now ? entry.expiresAt : now
    if (outcome === 'failure') {
      const [failuresField, retryAtField] = trusted ? [`failures:${address}`, `retryAt:${address}`] : ['failures', 'retryAt']
      const failures = (record.get(failuresField) ?? 0) + 1
      record.set(failuresField, failures)
      if (!trusted) record.set(`from:${address}`, (record.get(`from:${address}`) ?? 0) + 1)
      let waitEnds = now
      if (failures >= policy.threshold) {
        waitEnds = now + scheduledWaitMs(failures, policy)
        record.set(retryAtField, waitEnds)
      }
      expiresAt = Math.max(expiresAt, waitEnds + policy.windowMs)
    } else {
      const trustedAddresses = live(this.trusted.get(account), now) ?? new Map<string, number>()
      // Kept in the order of their last success, so soonest to expire first: dropping the expired
      // ones stops at the first live one, and a success costs the same however many the account trusts.
      for (const [trustedAddress, until] of trustedAddresses) {
        if (until > now) break
        trustedAddresses.delete(trustedAddress)
      }
      trustedAddresses.delete(address)
      trustedAddresses.set(address, now + policy.trustedAddressMs)
      // The address just trusted is the last to expire, as the Redis key's PEXPIRE has it.
      this.trusted.set(account, { value: trustedAddresses, expiresAt: now + policy.trustedAddressMs })
      // A success forgets the failures of its own address, and no other's.
      record.delete(`failures:${address}`)
      record.delete(`retryAt:${address}`)
      const own = record.get(`from:${address}`) ?? 0
      if (own > 0) {
        const failures = (record.get('failures') ?? 0) - own
        record.delete(`from:${address}`)
        if (failures > 0) record.set('failures', failures)
        else record.delete('failures')
        if (failures < policy.threshold) record.delete('retryAt')
      }
    }
    if (record.size === 0) this.failures.delete(account)
    else this.failures.set(account, { value: record, expiresAt })
  }
}

function live<T> (entry: Expiring<T> | undefined, now: number): T | undefined {
  return entry !== undefined && entry.expiresAt > now ? entry.value : undefined
}
