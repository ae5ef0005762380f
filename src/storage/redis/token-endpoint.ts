import { randomUUID } from 'node:crypto'
import type { RedisConnection } from './connection.js'
import type { RedisClientRepository } from './clients.js'
import type { RedisKeys } from './keys.js'
import { withRollingWindow, type RedisWithRollingWindow } from './rolling-window.js'
import type { WindowAdmission, WindowLimit } from '../../limits/rolling-window.js'
import type { ClientLookup, FailureAdmission, FailureLimit, TokenEndpointStore } from '../../oauth/token-endpoint-store.js'

// Both scripts: KEYS[1] the address's failures, KEYS[2] its attempts in flight, sorted sets of
// attempt ids scored by when they failed and until when they count as in flight. The `#!lua` line
// (Redis 7) makes Redis refuse a script while it is out of memory; without it a script whose first
// write frees nothing (ZREMRANGEBYSCORE, ZREM) may go on writing past maxmemory. Redis's clock
// rather than the caller's, so replicas with skewed clocks agree.
const NOW = `
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
`

// ARGV: max, windowMs, inFlightMs, attemptId. Returns {0, 0} admitted, {1, waitMs}, or {2, 0} busy.
const ADMIT_SCRIPT = `#!lua${NOW}
local failures, inFlight = KEYS[1], KEYS[2]
local max, windowMs, inFlightMs = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', failures, '-inf', now - windowMs)
local failed = redis.call('ZCARD', failures)
if failed >= max then
  local oldest = tonumber(redis.call('ZRANGE', failures, 0, 0, 'WITHSCORES')[2])
  return {1, math.max(oldest + windowMs - now, 1)}
end
redis.call('ZREMRANGEBYSCORE', inFlight, '-inf', now)
if failed + redis.call('ZCARD', inFlight) >= max then return {2, 0} end
redis.call('ZADD', inFlight, now + inFlightMs, ARGV[4])
redis.call('PEXPIRE', inFlight, inFlightMs)
return {0, 0}
`

// ARGV: attemptId, 'failure' or 'other', windowMs.
const END_SCRIPT = `#!lua${NOW}
local failures, inFlight = KEYS[1], KEYS[2]
redis.call('ZREM', inFlight, ARGV[1])
if ARGV[2] == 'failure' then
  redis.call('ZADD', failures, now, ARGV[1])
  -- The log vanishes once its newest failure has left the window.
  redis.call('PEXPIRE', failures, tonumber(ARGV[3]))
end
return 0
`

type RedisWithScripts = RedisWithRollingWindow & {
  clientAuthAdmit (failures: string, inFlight: string, max: number, windowMs: number, inFlightMs: number, attemptId: string): Promise<[number, number]>
  clientAuthEnd (failures: string, inFlight: string, attemptId: string, outcome: 'failure' | 'other', windowMs: number): Promise<number>
}

/**
 * Redis mode, shared by every replica. Authenticating a client costs one round trip: the attempt
 * is admitted from the address and the client's record read, sent at once (and, with
 * auto-pipelining, in the same write as the commands of other requests). Ending it and counting
 * a grant are one command each, once the client is authenticated.
 */
export class RedisTokenEndpointStore implements TokenEndpointStore {
  readonly #redis: RedisWithScripts
  readonly #keys: RedisKeys
  readonly #clients: RedisClientRepository

  constructor (redis: RedisConnection, keys: RedisKeys, clients: RedisClientRepository) {
    // Through defineCommand: EVALSHA, falling back to EVAL after a Redis restart lost the script.
    redis.defineCommand('clientAuthAdmit', { numberOfKeys: 2, lua: ADMIT_SCRIPT })
    redis.defineCommand('clientAuthEnd', { numberOfKeys: 2, lua: END_SCRIPT })
    this.#redis = withRollingWindow(redis) as RedisWithScripts
    this.#keys = keys
    this.#clients = clients
  }

  async lookUpClient (clientId: string, clientAddress: string, attemptId: string, { max, windowMs, inFlightMs }: FailureLimit): Promise<ClientLookup> {
    const [[code, waitMs], record] = await Promise.all([
      this.#redis.clientAuthAdmit(...this.#keys.clientAuthFailures(clientAddress), max, windowMs, inFlightMs, attemptId),
      this.#redis.get(this.#keys.client(clientId).record)
    ])
    const admission: FailureAdmission = code === 0 ? { outcome: 'admitted' } : code === 1 ? { outcome: 'wait', waitMs } : { outcome: 'busy' }
    return { client: this.#clients.parse(clientId, record), admission }
  }

  async endAttempt (clientAddress: string, attemptId: string, failed: boolean, { windowMs }: FailureLimit): Promise<void> {
    await this.#redis.clientAuthEnd(...this.#keys.clientAuthFailures(clientAddress), attemptId, failed ? 'failure' : 'other', windowMs)
  }

  async admitGrant (clientId: string, grantLimit: WindowLimit): Promise<WindowAdmission> {
    const [grants, retryAfterMs] = await this.#redis.rollingWindowIncr(this.#keys.client(clientId).grants, grantLimit.windowMs, grantLimit.max, randomUUID())
    return { waitMs: grants > grantLimit.max ? retryAfterMs : 0 }
  }

  async claimAssertionId (clientId: string, jti: string, expiresAt: number): Promise<boolean> {
    return await this.#redis.set(this.#keys.client(clientId).assertionId(jti), '1', 'PXAT', expiresAt, 'NX') === 'OK'
  }
}
