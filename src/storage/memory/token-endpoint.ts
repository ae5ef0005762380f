import { ExpirySweep, SWEEP_INTERVAL_MS } from './expiry-sweep.js'
import { LocalRollingWindowStore } from './rolling-window.js'
import type { ClientRepository } from '../../clients/repository.js'
import { windowAdmission, type WindowAdmission, type WindowLimit } from '../../limits/rolling-window.js'
import type { ClientLookup, FailureAdmission, FailureLimit, TokenEndpointStore } from '../../oauth/token-endpoint-store.js'

/** One address's failed client authentications: when each was (ms), oldest first. */
interface Failures {
  at: number[]
  expiresAt: number
}

/** One address's client authentications in flight: attempt id -> until when it counts as such. */
interface InFlight {
  until: Map<string, number>
  expiresAt: number
}

/** Embedded mode: the same rules in this process, the failure limit as the Redis scripts apply it (storage/redis/token-endpoint.ts). */
export class LocalTokenEndpointStore implements TokenEndpointStore {
  readonly #clients: ClientRepository
  readonly #failures = new Map<string, Failures>()
  readonly #inFlight = new Map<string, InFlight>()
  readonly #grants = new LocalRollingWindowStore()
  readonly #assertionIds = new Map<string, number>()
  readonly #sweep = new ExpirySweep(this.#assertionIds, (expiresAt) => expiresAt)
  readonly #addressSweeps = [new ExpirySweep(this.#failures, (failures) => failures.expiresAt), new ExpirySweep(this.#inFlight, (inFlight) => inFlight.expiresAt)]

  constructor (clients: ClientRepository) {
    this.#clients = clients
  }

  async lookUpClient (clientId: string, clientAddress: string, attemptId: string, failureLimit: FailureLimit): Promise<ClientLookup> {
    // Before anything is awaited: admitting is one step, as in Redis.
    const admission = this.#admit(clientAddress, attemptId, failureLimit)
    return { client: await this.#clients.find(clientId), admission }
  }

  #admit (clientAddress: string, attemptId: string, { max, windowMs, inFlightMs }: FailureLimit): FailureAdmission {
    const now = Date.now()
    for (const sweep of this.#addressSweeps) sweep.run(now, SWEEP_INTERVAL_MS)
    const failures = this.#failuresOf(clientAddress, now, windowMs)
    if (failures.length >= max) return { outcome: 'wait', waitMs: Math.max(failures[0] + windowMs - now, 1) }
    const inFlight = this.#inFlight.get(clientAddress)?.until ?? new Map<string, number>()
    for (const [id, until] of inFlight) if (until <= now) inFlight.delete(id)
    if (failures.length + inFlight.size >= max) return { outcome: 'busy' }
    inFlight.set(attemptId, now + inFlightMs)
    this.#inFlight.set(clientAddress, { until: inFlight, expiresAt: now + inFlightMs })
    return { outcome: 'admitted' }
  }

  async endAttempt (clientAddress: string, attemptId: string, failed: boolean, { windowMs }: FailureLimit): Promise<void> {
    this.#inFlight.get(clientAddress)?.until.delete(attemptId)
    if (!failed) return
    const now = Date.now()
    this.#failures.set(clientAddress, { at: [...this.#failuresOf(clientAddress, now, windowMs), now], expiresAt: now + windowMs })
  }

  /** The address's failures still in the window. */
  #failuresOf (clientAddress: string, now: number, windowMs: number): number[] {
    return (this.#failures.get(clientAddress)?.at ?? []).filter((at) => at > now - windowMs)
  }

  admitGrant (clientId: string, grantLimit: WindowLimit): Promise<WindowAdmission> {
    return windowAdmission(this.#grants, clientId, grantLimit)
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
