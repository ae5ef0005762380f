import type { RedisConnection } from './connection.ts'

// KEYS: the key. ARGV: the value expected ('' for none), the new value. Sets it only if nobody changed it meanwhile.
const COMPARE_AND_SET_SCRIPT = `
if (redis.call('GET', KEYS[1]) or '') ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2])
return 1`

type RedisWithCompareAndSet = RedisConnection & {
  compareAndSet (key: string, expected: string, value: string): Promise<number>
}

/**
 * Optimistic writes of one string key: `compareAndSet` sets `value` when the key still holds
 * `expected` (an empty string for a key that does not exist), and tells whether it did.
 */
export function withCompareAndSet (redis: RedisConnection): (key: string, expected: string, value: string) => Promise<boolean> {
  redis.defineCommand('compareAndSet', { numberOfKeys: 1, lua: COMPARE_AND_SET_SCRIPT })
  return async (key, expected, value) => await (redis as RedisWithCompareAndSet).compareAndSet(key, expected, value) === 1
}
