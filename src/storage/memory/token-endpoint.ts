import { ExpirySweep, SWEEP_INTERVAL_MS } from './expiry-sweep.js'
import { LocalRollingWindowStore } from './rolling-window.js'
import type { ClientRepository } from '../../clients/repository.js'
import { windowAdmission, type WindowAdmission, type WindowLimit } from '../../limits/rolling-window.js'
import type { ClientLookup, TokenEndpointStore } from '../../oauth/token-endpoint-store.js'

/** Embedded mode: the same rules in this process. */
export class LocalTokenEndpointStore implements TokenEndpointStore {
  readonly #clients: ClientRepository
  readonly #failures = new LocalRollingWindowStore()
  readonly #grants = new LocalRollingWindowStore()
  readonly #assertionIds = new Map<string, number>()
  readonly #sweep = new ExpirySweep(this.#assertionIds, (expiresAt) => expiresAt)

  constructor (clients: ClientRepository) {
    this.#clients = clients
  }

  async lookUpClient (clientId: string, ip: string, failureLimit: WindowLimit): Promise<ClientLookup> {
    return { client: await this.#clients.find(clientId), failures: await windowAdmission(this.#failures, ip, failureLimit, 'peek') }
  }

  async recordFailure (ip: string, failureLimit: WindowLimit): Promise<void> {
    await windowAdmission(this.#failures, ip, failureLimit)
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
