import { ExpirySweep, SWEEP_INTERVAL_MS } from './expiry-sweep.js'
import { LocalRollingWindowStore } from './rolling-window.js'
import type { ClientRepository } from '../../clients/repository.js'
import { windowAdmission, type WindowAdmission } from '../../limits/rolling-window.js'
import type { GrantAttempt, TokenEndpointLimits, TokenEndpointStore } from '../../oauth/token-endpoint-store.js'

/** Embedded mode: the same rules in this process; the grant is counted only once the client is authenticated. */
export class LocalTokenEndpointStore implements TokenEndpointStore {
  readonly #failures = new LocalRollingWindowStore()
  readonly #grants = new LocalRollingWindowStore()
  readonly #assertionIds = new Map<string, number>()
  readonly #sweep = new ExpirySweep(this.#assertionIds, (expiresAt) => expiresAt)
  readonly #clients: ClientRepository
  readonly #limits: TokenEndpointLimits

  constructor (clients: ClientRepository, limits: TokenEndpointLimits) {
    this.#clients = clients
    this.#limits = limits
  }

  failureAdmission (ip: string): Promise<WindowAdmission> {
    return windowAdmission(this.#failures, ip, this.#limits.failures, 'peek')
  }

  async recordFailure (ip: string): Promise<void> {
    await windowAdmission(this.#failures, ip, this.#limits.failures)
  }

  async openGrant (clientId: string, ip: string): Promise<GrantAttempt> {
    return {
      failures: await this.failureAdmission(ip),
      client: await this.#clients.find(clientId),
      admit: () => windowAdmission(this.#grants, clientId, this.#limits.grants),
      cancel: () => {}
    }
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
