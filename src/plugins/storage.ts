import fp from 'fastify-plugin'
import type { RedisConnection } from '../storage/redis/connection.ts'
import { openServerStorage, type Stores, type WriteProbe } from '../storage/stores.ts'

declare module 'fastify' {
  interface FastifyInstance {
    /** Every store the service uses, opened once (storage/stores.ts): the plugins wire them in. */
    stores: Stores
    /** Readiness as logins need it: whether the stores accept writes. */
    writeProbe: WriteProbe
    /** The Redis connection the stores share, undefined in embedded mode: for tests' own checks, never for the service's code. */
    redis: RedisConnection | undefined
  }
}

/** Opens the stored state as configured (see openServerStorage) and closes it with the app. */
export default fp(async function storagePlugin (app) {
  const storage = await openServerStorage(app.config, app.log, () => app.metrics.redisErrors.inc())
  app.decorate('stores', storage.stores)
  app.decorate('writeProbe', storage.writeProbe)
  app.decorate<RedisConnection | undefined, 'redis'>('redis', storage.redis)
  app.addHook('onClose', storage.close)
}, { name: 'storage', dependencies: ['config', 'metrics'] })
