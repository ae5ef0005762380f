import type { Redis } from 'ioredis'
import type { Config } from '../config.js'
import { FileClientRepository } from './file-repository.js'
import { RedisClientRepository } from './redis-repository.js'
import type { ClientRepository } from './repository.js'

/**
 * The one place that picks where clients live, like users: Redis when REDIS_URL is set (the
 * caller owns the client), otherwise clients.json in DATA_DIR. The server and the clients CLI use it.
 */
export function openClientRepository (config: Pick<Config, 'REDIS_URL' | 'REDIS_KEY_PREFIX' | 'DATA_DIR'>, redis?: Redis): ClientRepository {
  if (config.REDIS_URL === undefined) return new FileClientRepository(config.DATA_DIR)
  if (redis === undefined) throw new Error('REDIS_URL is set, so a Redis client is needed to open the client repository')
  return new RedisClientRepository(redis, config.REDIS_KEY_PREFIX)
}
