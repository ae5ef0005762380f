import { randomUUID } from 'node:crypto'
import type { RedisConnection } from './connection.js'
import type { RedisClientRepository } from './clients.js'
import type { RedisKeys } from './keys.js'
import { RedisRollingWindowStore, withRollingWindow, type RedisWithRollingWindow } from './rolling-window.js'
import { windowAdmission, type WindowAdmission, type WindowLimit } from '../../limits/rolling-window.js'
import type { ClientLookup, TokenEndpointStore } from '../../oauth/token-endpoint-store.js'

/**
 * Redis mode, shared by every replica. Authenticating a client costs one round trip: the IP's
 * failure window is looked at and the client's record read, sent at once (and, with
 * auto-pipelining, in the same write as the commands of other requests). A grant is counted in a
 * second one, once the client is authenticated.
 */
export class RedisTokenEndpointStore implements TokenEndpointStore {
  readonly #redis: RedisWithRollingWindow
  readonly #keys: RedisKeys
  readonly #clients: RedisClientRepository
  readonly #failures: RedisRollingWindowStore

  constructor (redis: RedisConnection, keys: RedisKeys, clients: RedisClientRepository) {
    this.#redis = withRollingWindow(redis)
    this.#keys = keys
    this.#clients = clients
    this.#failures = new RedisRollingWindowStore(redis, keys.clientAuthFailures)
  }

  async lookUpClient (clientId: string, ip: string, failureLimit: WindowLimit): Promise<ClientLookup> {
    const [[failures, retryAfterMs], record] = await Promise.all([
      this.#redis.rollingWindowIncr(this.#keys.clientAuthFailures(ip), failureLimit.windowMs, failureLimit.max, '', 'peek'),
      this.#redis.get(this.#keys.client(clientId).record)
    ])
    return { client: this.#clients.parse(clientId, record), failures: { waitMs: failures > failureLimit.max ? retryAfterMs : 0 } }
  }

  async recordFailure (ip: string, failureLimit: WindowLimit): Promise<void> {
    await windowAdmission(this.#failures, ip, failureLimit)
  }

  async admitGrant (clientId: string, grantLimit: WindowLimit): Promise<WindowAdmission> {
    const [grants, retryAfterMs] = await this.#redis.rollingWindowIncr(this.#keys.client(clientId).grants, grantLimit.windowMs, grantLimit.max, randomUUID())
    return { waitMs: grants > grantLimit.max ? retryAfterMs : 0 }
  }

  async claimAssertionId (clientId: string, jti: string, expiresAt: number): Promise<boolean> {
    return await this.#redis.set(this.#keys.client(clientId).assertionId(jti), '1', 'PXAT', expiresAt, 'NX') === 'OK'
  }
}
