import fp from 'fastify-plugin'
import { AccountThrottle } from '../limits/account-throttle.js'
import { LocalThrottleStore } from '../storage/memory/account-throttle.js'
import { RedisThrottleStore } from '../storage/redis/account-throttle.js'

declare module 'fastify' {
  interface FastifyInstance {
    accountThrottle: AccountThrottle
  }
}

/** Per-account throttling, in Redis (shared by replicas) or in process (embedded mode). */
export default fp(async function accountThrottlePlugin (app) {
  const { redis, config } = app
  const store = redis !== undefined
    ? new RedisThrottleStore(redis, `${config.REDIS_KEY_PREFIX}throttle:`)
    : new LocalThrottleStore()
  app.decorate('accountThrottle', new AccountThrottle(store, app.keyedHash, {
    threshold: config.ACCOUNT_THROTTLE_THRESHOLD,
    baseMs: config.ACCOUNT_THROTTLE_BASE_SECONDS * 1000,
    maxMs: config.ACCOUNT_THROTTLE_MAX_SECONDS * 1000,
    trustedAddressDays: config.ACCOUNT_TRUSTED_CLIENT_DAYS
  }))
}, { name: 'account-throttle', dependencies: ['config', 'redis', 'keyed-hash'] })
