import { redisTopology, type Config } from '../config.js'
import type { RedisConnection } from './redis/connection.js'
import { FileClientRepository } from './files/clients.js'
import { RedisClientRepository } from './redis/clients.js'
import type { ClientRepository } from '../clients/repository.js'

/**
 * The one place that picks where clients live, like users: Redis when a Redis topology is configured (the
 * caller owns the client), otherwise clients.json in DATA_DIR. The server and the clients CLI use it.
 */
export function openClientRepository (config: Pick<Config, 'REDIS_URL' | 'REDIS_SENTINELS' | 'REDIS_CLUSTER_NODES' | 'REDIS_KEY_PREFIX' | 'DATA_DIR'>, redis?: RedisConnection): ClientRepository {
  if (redisTopology(config) === undefined) return new FileClientRepository(config.DATA_DIR)
  if (redis === undefined) throw new Error('Redis is configured, so a Redis client is needed to open the client repository')
  return new RedisClientRepository(redis, config.REDIS_KEY_PREFIX)
}
