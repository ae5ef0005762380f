import fp from 'fastify-plugin'
import type { Redis } from 'ioredis'
import { createRedisClient } from '../redis-client.js'
import { watchRedisPersistence } from '../redis-persistence.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** The shared Redis client in Redis mode; undefined in embedded mode. */
    redis: Redis | undefined
  }
}

/**
 * Opens the Redis client when REDIS_URL is set. Start-up does not wait for Redis: while it is
 * unreachable the service runs, answers 503 to logins and reports not ready, and the client
 * keeps reconnecting in the background.
 */
export default fp(async function redisPlugin (app) {
  const url = app.config.REDIS_URL
  if (url === undefined) {
    app.decorate('redis', undefined)
    return
  }
  const redis = createRedisClient(url)
  // The client emits an error on every reconnect attempt: log the outage once, and the recovery.
  let reachable = true
  redis.on('error', (error) => {
    app.metrics.redisErrors.inc()
    if (reachable) app.log.error({ err: error }, 'Redis is unreachable; logins answer 503 until it is back')
    reachable = false
  })
  redis.on('ready', () => {
    if (!reachable) app.log.info('Redis is reachable again')
    reachable = true
  })
  watchRedisPersistence(redis, app.log)
  redis.connect().catch(() => { /* reported through the error event; the client retries */ })
  app.decorate('redis', redis)
  app.addHook('onClose', async () => {
    await redis.quit().catch(() => redis.disconnect())
  })
}, { name: 'redis', dependencies: ['config', 'metrics'] })
