import type { RedisClient } from '../redis-client.js'
import type { FailureStore, ThrottlePolicy } from './account-throttle.js'

/**
 * KEYS[1]: the username's hash (failures, retryAt). ARGV: threshold, memoryMs, then the back-off
 * schedule (ms). The same rules as LocalFailureStore, atomically: replicas taking attempts for one
 * username at the same moment still see every failure counted.
 */
const ADMIT_SCRIPT = `
local key = KEYS[1]
local threshold = tonumber(ARGV[1])
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)

local retryAt = tonumber(redis.call('HGET', key, 'retryAt') or '0')
if retryAt > now then return retryAt - now end

local failures = redis.call('HINCRBY', key, 'failures', 1)
redis.call('PEXPIRE', key, ARGV[2])
if failures >= threshold then
  local scheduleLength = #ARGV - 2
  local step = math.min(failures - threshold, scheduleLength - 1)
  redis.call('HSET', key, 'retryAt', now + tonumber(ARGV[3 + step]))
end
return 0
`

type RedisWithAdmit = RedisClient & {
  accountThrottleAdmit (key: string, threshold: number, memoryMs: number, ...backoffScheduleMs: number[]): Promise<number>
}

/** Failure counts shared by every replica: one hash per (hashed) username, expiring on its own. */
export class RedisFailureStore implements FailureStore {
  private readonly redis: RedisWithAdmit

  constructor (redis: RedisClient, private readonly keyPrefix: string) {
    // Through defineCommand: EVALSHA, falling back to EVAL after a Redis restart lost the script.
    redis.defineCommand('accountThrottleAdmit', { numberOfKeys: 1, lua: ADMIT_SCRIPT })
    this.redis = redis as RedisWithAdmit
  }

  async admit (key: string, { threshold, backoffScheduleMs, memoryMs }: ThrottlePolicy): Promise<number> {
    return await this.redis.accountThrottleAdmit(this.keyPrefix + key, threshold, memoryMs, ...backoffScheduleMs)
  }

  async clear (key: string): Promise<void> {
    await this.redis.del(this.keyPrefix + key)
  }
}
