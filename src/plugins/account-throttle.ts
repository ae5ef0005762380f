import fp from 'fastify-plugin'
import { AccountThrottle } from '../limits/account-throttle.ts'

declare module 'fastify' {
  interface FastifyInstance {
    accountThrottle: AccountThrottle
  }
}

/** Per-account throttling on the throttle's store (from app.stores), with the configured back-off. */
export default fp(async function accountThrottlePlugin (app) {
  const { config } = app
  app.decorate('accountThrottle', new AccountThrottle(app.stores.transient.accountThrottle, app.keyedHash, {
    threshold: config.ACCOUNT_THROTTLE_THRESHOLD,
    baseMs: config.ACCOUNT_THROTTLE_BASE_SECONDS * 1000,
    maxMs: config.ACCOUNT_THROTTLE_MAX_SECONDS * 1000,
    trustedAddressDays: config.ACCOUNT_TRUSTED_CLIENT_DAYS
  }))
}, { name: 'account-throttle', dependencies: ['config', 'storage', 'keyed-hash'] })
