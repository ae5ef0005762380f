import type { Redis } from 'ioredis'
import type { Config } from '../config.js'
import { FileUserRepository } from './file-repository.js'
import { RedisUserRepository } from './redis-repository.js'
import type { UserRepository } from './repository.js'

/**
 * The one place that picks where users live: Redis when REDIS_URL is set (the caller owns the
 * client), otherwise users.json in DATA_DIR. The server plugin and the users CLI both use it.
 */
export function openUserRepository (config: Pick<Config, 'REDIS_URL' | 'REDIS_KEY_PREFIX' | 'DATA_DIR'>, redis?: Redis): UserRepository {
  if (config.REDIS_URL === undefined) return new FileUserRepository(config.DATA_DIR)
  if (redis === undefined) throw new Error('REDIS_URL is set, so a Redis client is needed to open the user repository')
  return new RedisUserRepository(redis, config.REDIS_KEY_PREFIX)
}
