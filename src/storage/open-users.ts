import { redisTopology, type Config } from '../config.js'
import type { RedisConnection } from './redis/connection.js'
import { FileUserRepository } from './files/users.js'
import { RedisUserRepository } from './redis/users.js'
import type { UserRepository } from '../users/repository.js'

/**
 * The one place that picks where users live: Redis when a Redis topology is configured (the
 * caller owns the client), otherwise users.json in DATA_DIR. The server plugin and the users CLI both use it.
 */
export function openUserRepository (config: Pick<Config, 'REDIS_URL' | 'REDIS_SENTINELS' | 'REDIS_CLUSTER_NODES' | 'REDIS_KEY_PREFIX' | 'DATA_DIR'>, redis?: RedisConnection): UserRepository {
  if (redisTopology(config) === undefined) return new FileUserRepository(config.DATA_DIR)
  if (redis === undefined) throw new Error('Redis is configured, so a Redis client is needed to open the user repository')
  return new RedisUserRepository(redis, config.REDIS_KEY_PREFIX)
}
