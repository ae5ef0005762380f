import { ExpirySweep, SWEEP_INTERVAL_MS } from './expiry-sweep.ts'
import { LocalRollingWindowStore } from './rolling-window.ts'
import { TimestampLog } from './timestamp-log.ts'
import type { ClientRepository } from '../../clients/repository.ts'
import { windowAdmission, type WindowAdmission, type WindowLimit } from '../../limits/rolling-window.ts'
import type { ClientLookup, GrantAdmission, TokenEndpointStore } from '../../oauth/token-endpoint-store.ts'

/** Embedded mode: the same rules in this process, each step without an await inside, so as atomic as Redis's. */
export class LocalTokenEndpointStore implements TokenEndpointStore {
  readonly #clients: ClientRepository
  /** Each address's failed client authentications. */
  readonly #failures = new Map<string, TimestampLog>()
  readonly #failureSweep = new ExpirySweep(this.#failures, (failures) => failures.expiresAt)
  readonly #grants = new LocalRollingWindowStore()
  readonly #assertionIds = new Map<string, number>()
  readonly #sweep = new ExpirySweep(this.#assertionIds, (expiresAt) => expiresAt)

  constructor (clients: ClientRepository) {
    this.#clients = clients
  }

  async lookUpClient (clientId: string, clientAddress: string, failureLimit: WindowLimit): Promise<ClientLookup> {
    return { client: await this.#clients.find(clientId), failures: this.#peek(clientAddress, failureLimit) }
  }

  async recordFailure (clientAddress: string, failureLimit: WindowLimit): Promise<WindowAdmission> {
    const refused = this.#peek(clientAddress, failureLimit)
    if (refused.waitMs > 0) return refused
    const failures = this.#failures.get(clientAddress) ?? new TimestampLog()
    failures.record(Date.now(), failureLimit.windowMs)
    this.#failures.set(clientAddress, failures)
    return refused
  }

  async peekFailures (clientAddress: string, failureLimit: WindowLimit): Promise<WindowAdmission> {
    return this.#peek(clientAddress, failureLimit)
  }

  #peek (clientAddress: string, { max, windowMs }: WindowLimit): WindowAdmission {
    const now = Date.now()
    this.#failureSweep.run(now, SWEEP_INTERVAL_MS)
    const failures = this.#failures.get(clientAddress)
    if (failures === undefined || failures.count(now, windowMs) < max) return { waitMs: 0 }
    return { waitMs: Math.max(failures.oldest! + windowMs - now, 1) }
  }

  async admitGrant (clientId: string, grantLimit: WindowLimit, clientAddress: string, failureLimit: WindowLimit): Promise<GrantAdmission> {
    const failures = this.#peek(clientAddress, failureLimit)
    if (failures.waitMs > 0) return { failures, grant: { waitMs: 0 } }
    // windowAdmission's incr calls back at once: still no await between the look and the count.
    return { failures, grant: await windowAdmission(this.#grants, clientId, grantLimit) }
  }

  async claimAssertionId (clientId: string, jti: string, expiresAt: number): Promise<boolean> {
    const now = Date.now()
    this.#sweep.run(now, SWEEP_INTERVAL_MS)
    const key = `${clientId} ${jti}`
    if ((this.#assertionIds.get(key) ?? 0) > now) return false
    this.#assertionIds.set(key, expiresAt)
    return true
  }
}
