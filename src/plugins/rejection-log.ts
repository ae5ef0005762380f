import fp from 'fastify-plugin'
import { RejectionLog } from '../observability/rejection-log.js'

declare module 'fastify' {
  interface FastifyInstance {
    rejectionLog: RejectionLog
  }
}

/**
 * Per client address and minute, the first 10 rejected login attempts are logged one by one: more
 * than the per-IP limit lets through, so a client that merely hits the limit is logged as before.
 * 10,000 addresses a minute bound the memory: a few MiB at most.
 */
export const REJECTION_LOG_LIMITS = { firstPerInterval: 10, intervalMs: 60_000, maxAddresses: 10_000 }

/** app.rejectionLog: sums a flood of rejected login attempts into one line per client address and interval. */
export default fp(async function rejectionLogPlugin (app) {
  const rejectionLog = new RejectionLog({
    ...REJECTION_LOG_LIMITS,
    write: ({ clientIp, outcomes, intervalMs }) => {
      const rejections = Object.values(outcomes).reduce((sum, count) => sum + count, 0)
      app.log.info({ audit: 'login', clientIp, rejections, outcomes, intervalMs }, 'login rejections not logged one by one')
    }
  })
  app.decorate('rejectionLog', rejectionLog)
  app.addHook('onClose', async () => { rejectionLog.close() })
}, { name: 'rejection-log' })
