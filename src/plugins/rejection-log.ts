import fp from 'fastify-plugin'
import { REJECTION_LOG_LIMITS, RejectionLog } from '../observability/rejection-log.ts'

declare module 'fastify' {
  interface FastifyInstance {
    rejectionLog: RejectionLog
  }
}

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
