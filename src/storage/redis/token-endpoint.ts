import { randomUUID } from 'node:crypto'
import type { RedisConnection } from './connection.ts'
import type { RedisClientRepository } from './clients.ts'
import type { RedisKeys } from './keys.ts'
import { withRollingWindow, type RedisWithRollingWindow } from './rolling-window.ts'
import type { WindowAdmission, WindowLimit } from '../../limits/rolling-window.ts'
import type { ClientLookup, GrantAdmission, TokenEndpointStore } from '../../oauth/token-endpoint-store.ts'

// KEYS[1]: an address's failures, the rolling window's log (rolling-window.ts), which records them.
// ARGV: max, windowMs. Returns the wait (ms) when the window is full, else 0. Writes nothing, so
// needs no room in memory; Redis's clock, as the rolling window reads it.
const PEEK_FAILURES_SCRIPT = `#!lua flags=no-writes
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local max, windowMs = tonumber(ARGV[1]), tonumber(ARGV[2])
local live = '(' .. (now - windowMs)
if redis.call('ZCOUNT', KEYS[1], live, '+inf') < max then return 0 end
local oldest = tonumber(redis.call('ZRANGEBYSCORE', KEYS[1], live, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)[2])
return math.max(oldest + windowMs - now, 1)
`

type RedisWithScripts = RedisWithRollingWindow & {
  peekClientAuthFailures (failures: string, max: number, windowMs: number): Promise<number>
}

/**
 * Redis mode, shared by every replica. Authenticating a client costs one round trip: the address's
 * failure window looked at and the client's record read, sent at once (and, with auto-pipelining,
 * in the same write as the commands of other requests). A failure is then recorded, or a grant
 * counted beside a second look at the failure window, in one more.
 */
export class RedisTokenEndpointStore implements TokenEndpointStore {
  readonly #redis: RedisWithScripts
  readonly #keys: RedisKeys
  readonly #clients: RedisClientRepository

  constructor (redis: RedisConnection, keys: RedisKeys, clients: RedisClientRepository) {
    // Through defineCommand: EVALSHA, falling back to EVAL after a Redis restart lost the script.
    redis.defineCommand('peekClientAuthFailures', { numberOfKeys: 1, lua: PEEK_FAILURES_SCRIPT })
    this.#redis = withRollingWindow(redis) as RedisWithScripts
    this.#keys = keys
    this.#clients = clients
  }

  async lookUpClient (clientId: string, clientAddress: string, failureLimit: WindowLimit): Promise<ClientLookup> {
    const [failures, record] = await Promise.all([
      this.peekFailures(clientAddress, failureLimit),
      this.#redis.get(this.#keys.client(clientId).record)
    ])
    return { client: this.#clients.parse(clientId, record), failures }
  }

  async recordFailure (clientAddress: string, { max, windowMs }: WindowLimit): Promise<WindowAdmission> {
    // The rolling window records an attempt only while it holds fewer than max: the check and the record are one step.
    const [failures, retryAfterMs] = await this.#redis.rollingWindowIncr(this.#keys.clientAuthFailures(clientAddress), windowMs, max, randomUUID())
    return { waitMs: failures > max ? retryAfterMs : 0 }
  }

  async peekFailures (clientAddress: string, { max, windowMs }: WindowLimit): Promise<WindowAdmission> {
    return { waitMs: await this.#redis.peekClientAuthFailures(this.#keys.clientAuthFailures(clientAddress), max, windowMs) }
  }

  async admitGrant (clientId: string, grantLimit: WindowLimit, clientAddress: string, failureLimit: WindowLimit): Promise<GrantAdmission> {
    // Two slots in Cluster (the address's, the client's), so not one script: sent at once, one round trip.
    const grants = this.#keys.client(clientId).grants
    const grantId = randomUUID()
    const [failures, [granted, retryAfterMs]] = await Promise.all([
      this.peekFailures(clientAddress, failureLimit),
      this.#redis.rollingWindowIncr(grants, grantLimit.windowMs, grantLimit.max, grantId)
    ])
    if (failures.waitMs === 0) return { failures, grant: { waitMs: granted > grantLimit.max ? retryAfterMs : 0 } }
    // Rare: the right credentials from an address past its failure limit. The grant is not made, so it is taken back.
    if (granted <= grantLimit.max) await this.#redis.zrem(grants, grantId)
    return { failures, grant: { waitMs: 0 } }
  }

  async claimAssertionId (clientId: string, jti: string, expiresAt: number): Promise<boolean> {
    return await this.#redis.set(this.#keys.client(clientId).assertionId(jti), '1', 'PXAT', expiresAt, 'NX') === 'OK'
  }
}
