import type { RedisConnection } from './connection.ts'
import type { RedisKeys } from './keys.ts'
import type { ThrottleAdmission, AttemptIdentity, AttemptOutcome, ThrottlePolicy, ThrottleStore } from '../../limits/account-throttle.ts'

// Both scripts: KEYS[1] the account's failure record (a hash: failures, retryAt, from:<address>,
// failures:<address>, retryAt:<address>), KEYS[2] its trusted addresses (a sorted set scored by until
// when), KEYS[3] its attempts in flight (a sorted set of "<scope> <attemptId>" scored by until when).
// The `#!lua` line (Redis 7) makes Redis refuse a script while it is out of memory; without it a
// script whose first write frees nothing (ZREMRANGEBYSCORE, ZREM) may go on writing past maxmemory.
// Redis's clock rather than the caller's, so replicas with skewed clocks agree.
const NOW = `
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
`

// ARGV: address, attemptId, threshold, inFlightMs. Returns {0, trusted 0|1} admitted, {1, waitMs}, or {2, 0} busy.
const ADMIT_SCRIPT = `#!lua${NOW}
local record, trustedAddresses, inFlight = KEYS[1], KEYS[2], KEYS[3]
local address, attemptId, threshold, inFlightMs = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])

local trusted = tonumber(redis.call('ZSCORE', trustedAddresses, address) or '0') > now
local scope, failuresField, retryAtField = 'account', 'failures', 'retryAt'
if trusted then scope, failuresField, retryAtField = address, 'failures:' .. address, 'retryAt:' .. address end

local retryAt = tonumber(redis.call('HGET', record, retryAtField) or '0')
if retryAt > now then return {1, retryAt - now} end

local failures = tonumber(redis.call('HGET', record, failuresField) or '0')
redis.call('ZREMRANGEBYSCORE', inFlight, '-inf', now)
local pending = 0
for _, member in ipairs(redis.call('ZRANGE', inFlight, 0, -1)) do
  if string.sub(member, 1, #scope + 1) == scope .. ' ' then pending = pending + 1 end
end
-- Below the threshold, as many attempts as it has room for; past it, one at a time.
if pending >= math.max(threshold - failures, 1) then return {2, 0} end
redis.call('ZADD', inFlight, now + inFlightMs, scope .. ' ' .. attemptId)
redis.call('PEXPIRE', inFlight, inFlightMs)
return {0, trusted and 1 or 0}
`

// ARGV: address, attemptId, trusted (0|1), outcome, threshold, windowMs, trustedAddressMs, then the back-off schedule.
const FINISH_SCRIPT = `#!lua${NOW}
local record, trustedAddresses, inFlight = KEYS[1], KEYS[2], KEYS[3]
local address, attemptId, trusted, outcome = ARGV[1], ARGV[2], ARGV[3] == '1', ARGV[4]
local threshold, windowMs, trustedAddressMs = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])

redis.call('ZREM', inFlight, (trusted and address or 'account') .. ' ' .. attemptId)
if outcome == 'failure' then
  local failuresField, retryAtField = 'failures', 'retryAt'
  if trusted then failuresField, retryAtField = 'failures:' .. address, 'retryAt:' .. address end
  local failures = redis.call('HINCRBY', record, failuresField, 1)
  if not trusted then redis.call('HINCRBY', record, 'from:' .. address, 1) end
  local waitEnds = now
  if failures >= threshold then
    local scheduleLength = #ARGV - 7
    waitEnds = now + tonumber(ARGV[8 + math.min(failures - threshold, scheduleLength - 1)])
    redis.call('HSET', record, retryAtField, waitEnds)
  end
  -- The record lives until its last failure's window has passed after the wait it set.
  if redis.call('PTTL', record) < waitEnds - now + windowMs then redis.call('PEXPIRE', record, waitEnds - now + windowMs) end
elseif outcome == 'success' then
  redis.call('ZREMRANGEBYSCORE', trustedAddresses, '-inf', now)
  redis.call('ZADD', trustedAddresses, now + trustedAddressMs, address)
  redis.call('PEXPIRE', trustedAddresses, trustedAddressMs)
  -- A success forgets the failures of its own address, and no other's.
  redis.call('HDEL', record, 'failures:' .. address, 'retryAt:' .. address)
  local own = tonumber(redis.call('HGET', record, 'from:' .. address) or '0')
  if own > 0 then
    redis.call('HDEL', record, 'from:' .. address)
    local failures = redis.call('HINCRBY', record, 'failures', -own)
    if failures <= 0 then redis.call('HDEL', record, 'failures') end
    if failures < threshold then redis.call('HDEL', record, 'retryAt') end
  end
end
return 0
`

type RedisWithThrottle = RedisConnection & {
  accountThrottleAdmit (record: string, trustedAddresses: string, inFlight: string, address: string, attemptId: string, threshold: number, inFlightMs: number): Promise<[number, number]>
  accountThrottleFinish (record: string, trustedAddresses: string, inFlight: string, address: string, attemptId: string, trusted: 0 | 1, outcome: AttemptOutcome,
    threshold: number, windowMs: number, trustedAddressMs: number, ...backoffScheduleMs: number[]): Promise<number>
}

/**
 * Throttle records shared by every replica. They only shape answers for a while (each key expires
 * on its own, and losing them forgets failures and trusted addresses, nothing more).
 */
export class RedisThrottleStore implements ThrottleStore {
  private readonly redis: RedisWithThrottle

  private readonly keys: RedisKeys

  constructor (redis: RedisConnection, keys: RedisKeys) {
    this.keys = keys
    // Through defineCommand: EVALSHA, falling back to EVAL after a Redis restart lost the script.
    redis.defineCommand('accountThrottleAdmit', { numberOfKeys: 3, lua: ADMIT_SCRIPT })
    redis.defineCommand('accountThrottleFinish', { numberOfKeys: 3, lua: FINISH_SCRIPT })
    this.redis = redis as RedisWithThrottle
  }

  async admit ({ account, address, attemptId }: AttemptIdentity, { threshold, inFlightMs }: ThrottlePolicy): Promise<ThrottleAdmission> {
    const [code, value] = await this.redis.accountThrottleAdmit(...this.keys.accountThrottle(account), address, attemptId, threshold, inFlightMs)
    if (code === 0) return { outcome: 'admitted', trusted: value === 1 }
    return code === 1 ? { outcome: 'wait', waitMs: value } : { outcome: 'busy' }
  }

  async finish ({ account, address, attemptId }: AttemptIdentity, trusted: boolean, outcome: AttemptOutcome, policy: ThrottlePolicy): Promise<void> {
    await this.redis.accountThrottleFinish(...this.keys.accountThrottle(account), address, attemptId, trusted ? 1 : 0, outcome,
      policy.threshold, policy.windowMs, policy.trustedAddressMs, ...policy.backoffScheduleMs)
  }
}
