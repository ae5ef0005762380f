import fp from 'fastify-plugin'
import { AccountThrottle, LocalFailureStore } from '../account-throttle/account-throttle.js'
import { RedisFailureStore } from '../account-throttle/redis-failure-store.js'

declare module 'fastify' {
  interface FastifyInstance {
    accountThrottle: AccountThrottle
  }
}

/** Per-username throttling, in Redis (shared by replicas) or in process (embedded mode). */
export default fp(async function accountThrottlePlugin (app) {
  const { redis, config } = app
  const store = redis !== undefined
    ? new RedisFailureStore(redis, `${config.REDIS_KEY_PREFIX}login-failures:`)
    : new LocalFailureStore()
  app.decorate('accountThrottle', new AccountThrottle(store, {
    threshold: config.ACCOUNT_THROTTLE_THRESHOLD,
    baseMs: config.ACCOUNT_THROTTLE_BASE_SECONDS * 1000,
    maxMs: config.ACCOUNT_THROTTLE_MAX_SECONDS * 1000
  }))
}, { name: 'account-throttle', dependencies: ['config', 'redis'] })
