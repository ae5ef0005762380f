import { randomUUID } from 'node:crypto'
import type { RedisConnection } from '../storage/redis/connection.js'
import type { Client } from '../clients/client.js'
import { clientKeys, type RedisClientRepository } from '../storage/redis/clients.js'
import type { ClientRepository } from '../clients/repository.js'
import { ExpirySweep, SWEEP_INTERVAL_MS } from '../storage/memory/expiry-sweep.js'
import { LocalRollingWindowStore } from '../storage/memory/rolling-window.js'
import { forgetAttempt, RedisRollingWindowStore, withRollingWindow } from '../storage/redis/rolling-window.js'

/** A rolling window's verdict: `waitMs` 0 when admitted, else until the oldest counted attempt leaves it. */
export interface WindowAdmission {
  waitMs: number
}

export interface WindowLimit {
  max: number
  windowMs: number
}

/** A token request's client, looked up together with its grant being counted and its IP's failures. */
export interface GrantAttempt {
  /** Whether the request's IP may try to authenticate a client at all (looked at, not counted). */
  failures: WindowAdmission
  client: Client | undefined
  /** Counts the grant against the client's limit (if not counted already) and tells whether it may go ahead. */
  admit (): Promise<WindowAdmission>
  /** The request failed before admit(): a grant counted in advance is taken back. */
  cancel (): void
}

/**
 * What the token endpoint keeps besides the clients, all of it state that only shapes answers for
 * a while and expires by itself: failed client authentications per client IP, grants per client,
 * and the ids of client assertions already used. In Redis (shared by replicas) or in process.
 */
export interface TokenEndpointStore {
  /** Whether this IP may try to authenticate a client at all; looks without counting. */
  failureAdmission (ip: string): Promise<WindowAdmission>
  recordFailure (ip: string): Promise<void>
  /** The IP's failure admission, the client and, where one round trip can do it all, the grant counted against its limit. */
  openGrant (clientId: string, ip: string): Promise<GrantAttempt>
  /** Marks an assertion id used until `expiresAt` (Unix ms); false when it was already used. */
  claimAssertionId (clientId: string, jti: string, expiresAt: number): Promise<boolean>
}

export interface TokenEndpointLimits {
  failures: WindowLimit
  grants: WindowLimit
}

type RollingWindowStore = LocalRollingWindowStore | RedisRollingWindowStore

function incr (store: RollingWindowStore, key: string, limit: WindowLimit, mode?: 'peek'): Promise<WindowAdmission> {
  return new Promise((resolve, reject) => {
    store.incr(key, (error, result) => {
      if (result === undefined) reject(error ?? new Error('rolling window store answered nothing'))
      else resolve({ waitMs: result.current > limit.max ? result.ttl : 0 })
    }, limit.windowMs, limit.max, mode)
  })
}

/** Failed client authentications per client IP, counted in a rolling window by either store. */
abstract class FailureWindowStore {
  constructor (private readonly failures: RollingWindowStore, protected readonly limits: TokenEndpointLimits) {}

  failureAdmission (ip: string): Promise<WindowAdmission> {
    return incr(this.failures, ip, this.limits.failures, 'peek')
  }

  async recordFailure (ip: string): Promise<void> {
    await incr(this.failures, ip, this.limits.failures)
  }
}

/**
 * Redis mode. A grant costs one round trip: the IP's failures are looked at, the client's record
 * read and the grant counted in its rolling window, all sent at once (and, with auto-pipelining,
 * in the same write as the commands of other requests). A grant counted for a request that then
 * fails is taken back.
 */
export class RedisTokenEndpointStore extends FailureWindowStore implements TokenEndpointStore {
  readonly #redis
  readonly #keyPrefix: string
  readonly #failureKeyPrefix: string
  readonly #clients: RedisClientRepository

  constructor (redis: RedisConnection, keyPrefix: string, clients: RedisClientRepository, limits: TokenEndpointLimits) {
    const failureKeyPrefix = `${keyPrefix}client-auth-failures:`
    super(new RedisRollingWindowStore(redis, failureKeyPrefix), limits)
    this.#redis = withRollingWindow(redis)
    this.#keyPrefix = keyPrefix
    this.#failureKeyPrefix = failureKeyPrefix
    this.#clients = clients
  }

  async openGrant (clientId: string, ip: string): Promise<GrantAttempt> {
    const keys = clientKeys(this.#keyPrefix, clientId)
    const { failures, grants } = this.limits
    const attemptId = randomUUID()
    // Sent together: the client's auto-pipelining puts them in one write with other requests' commands.
    const [failureWindow, record, grantWindow] = await Promise.all([
      this.#redis.rollingWindowIncr(this.#failureKeyPrefix + ip, failures.windowMs, failures.max, '', 'peek'),
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
        forgetAttempt(this.#redis, keys.grants, attemptId).catch(() => {})
      }
    }
  }

  async claimAssertionId (clientId: string, jti: string, expiresAt: number): Promise<boolean> {
    return await this.#redis.set(clientKeys(this.#keyPrefix, clientId).assertionId(jti), '1', 'PXAT', expiresAt, 'NX') === 'OK'
  }
}

/** Embedded mode: the same rules in this process; the grant is counted only once the client is authenticated. */
export class LocalTokenEndpointStore extends FailureWindowStore implements TokenEndpointStore {
  readonly #grants = new LocalRollingWindowStore()
  readonly #assertionIds = new Map<string, number>()
  readonly #sweep = new ExpirySweep(this.#assertionIds, (expiresAt) => expiresAt)
  readonly #clients: ClientRepository

  constructor (clients: ClientRepository, limits: TokenEndpointLimits) {
    super(new LocalRollingWindowStore(), limits)
    this.#clients = clients
  }

  async openGrant (clientId: string, ip: string): Promise<GrantAttempt> {
    return {
      failures: await this.failureAdmission(ip),
      client: await this.#clients.find(clientId),
      admit: () => incr(this.#grants, clientId, this.limits.grants),
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
