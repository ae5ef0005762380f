import { randomUUID } from 'node:crypto'
import type { RedisConnection } from './connection.js'
import type { RedisClientRepository } from './clients.js'
import type { RedisKeys } from './keys.js'
import { RedisRollingWindowStore, withRollingWindow, type RedisWithRollingWindow } from './rolling-window.js'
import { windowAdmission, type WindowAdmission } from '../../limits/rolling-window.js'
import type { GrantAttempt, TokenEndpointLimits, TokenEndpointStore } from '../../oauth/token-endpoint-store.js'

/**
 * Redis mode. A grant costs one round trip: the IP's failures are looked at, the client's record
 * read and the grant counted in its rolling window, all sent at once (and, with auto-pipelining,
 * in the same write as the commands of other requests). A grant counted for a request that then
 * fails is taken back.
 */
export class RedisTokenEndpointStore implements TokenEndpointStore {
  readonly #redis: RedisWithRollingWindow
  readonly #keys: RedisKeys
  readonly #clients: RedisClientRepository
  readonly #failures: RedisRollingWindowStore
  readonly #limits: TokenEndpointLimits

  constructor (redis: RedisConnection, keys: RedisKeys, clients: RedisClientRepository, limits: TokenEndpointLimits) {
    this.#redis = withRollingWindow(redis)
    this.#keys = keys
    this.#clients = clients
    this.#failures = new RedisRollingWindowStore(redis, keys.clientAuthFailures)
    this.#limits = limits
  }

  failureAdmission (ip: string): Promise<WindowAdmission> {
    return windowAdmission(this.#failures, ip, this.#limits.failures, 'peek')
  }

  async recordFailure (ip: string): Promise<void> {
    await windowAdmission(this.#failures, ip, this.#limits.failures)
  }

  async openGrant (clientId: string, ip: string): Promise<GrantAttempt> {
    const keys = this.#keys.client(clientId)
    const { failures, grants } = this.#limits
    const attemptId = randomUUID()
    // Sent together: the connection's auto-pipelining puts them in one write with other requests' commands.
    const [failureWindow, record, grantWindow] = await Promise.all([
      this.#redis.rollingWindowIncr(this.#keys.clientAuthFailures(ip), failures.windowMs, failures.max, '', 'peek'),
      this.#redis.get(keys.record),
      this.#redis.rollingWindowIncr(keys.grants, grants.windowMs, grants.max, attemptId)
    ])
    let counted = grantWindow[0] <= grants.max
    return {
      failures: { waitMs: failureWindow[0] > failures.max ? failureWindow[1] : 0 },
      client: this.#clients.parse(clientId, record),
      admit: async () => ({ waitMs: counted ? 0 : grantWindow[1] }),
      cancel: () => {
        if (!counted) return
        counted = false
        // Best effort: a grant left counted costs the client one of its TOKEN_GRANT_RATE_MAX.
        this.#redis.zrem(keys.grants, attemptId).catch(() => {})
      }
    }
  }

  async claimAssertionId (clientId: string, jti: string, expiresAt: number): Promise<boolean> {
    return await this.#redis.set(this.#keys.client(clientId).assertionId(jti), '1', 'PXAT', expiresAt, 'NX') === 'OK'
  }
}
