import fp from 'fastify-plugin'
import { redisTopology } from '../config.js'
import { closeRedisConnection, createRedisConnection, firstConnection, loggableError, type RedisConnection } from '../storage/redis/connection.js'
import { watchRedisPersistence } from '../storage/redis/persistence.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** The shared Redis client in Redis mode; undefined in embedded mode. */
    redis: RedisConnection | undefined
  }
}

/**
 * Opens the Redis client when a Redis topology is configured. Start-up does not wait for Redis to
 * be up: while it is unreachable the service runs, answers 503 to logins and reports not ready,
 * and the client keeps reconnecting in the background. Credentials Redis refuses stop the start.
 */
export default fp(async function redisPlugin (app) {
  if (redisTopology(app.config) === undefined) {
    app.decorate('redis', undefined)
    return
  }
  const redis = await createRedisConnection(app.config)
  // The client emits an error on every reconnect attempt: log the outage once, and the recovery.
  // Only the message: ioredis errors carry the failed command's arguments (AUTH's are the password).
  let reachable = true
  const onError = (error: Error): void => {
    app.metrics.redisErrors.inc()
    if (reachable) app.log.error({ err: loggableError(error) }, 'Redis is unreachable; logins answer 503 until it is back')
    reachable = false
  }
  redis.on('error', onError)
  // A Cluster reports each node's connection errors separately.
  redis.on('node error', onError)
  redis.on('ready', () => {
    if (!reachable) app.log.info('Redis is reachable again')
    reachable = true
  })
  watchRedisPersistence(redis, app.log)
  try {
    await firstConnection(redis, app.config)
  } catch (error) {
    redis.disconnect()
    throw error
  }
  app.decorate<RedisConnection | undefined, 'redis'>('redis', redis)
  app.addHook('onClose', async () => { await closeRedisConnection(redis) })
}, { name: 'redis', dependencies: ['config', 'metrics'] })
