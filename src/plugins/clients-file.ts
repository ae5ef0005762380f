import fp from 'fastify-plugin'
import { ClientsFileReconciler } from '../clients/clients-file-watch.ts'
import { planHasChanges } from '../clients/clients-file.ts'
import { loggableError } from '../observability/log-fields.ts'

/**
 * With CLIENTS_FILE set, reconciles the clients with it once the app is ready and whenever it
 * changes (clients/clients-file-watch.ts), logging and counting each outcome. Readiness does not
 * depend on it: a bad file keeps the last good clients.
 */
export default fp(async function clientsFilePlugin (app) {
  const file = app.config.CLIENTS_FILE
  if (file === undefined) return
  const count = app.metrics.clientsFileReconciliations
  const log = app.log.child({ clientsFile: file })
  const reconciler = new ClientsFileReconciler(file, app.stores.durable.clients, app.config.JWT_AUDIENCE, {
    applied: (plan, version) => {
      const changed = planHasChanges(plan)
      count.inc({ outcome: changed ? 'changed' : 'unchanged' })
      log.info({ version, created: plan.created, changed: plan.changed, removed: plan.removed, unchanged: plan.unchanged.length },
        changed ? 'clients file applied' : 'clients file applied: no changes')
    },
    invalid: (error, version) => {
      count.inc({ outcome: 'invalid' })
      log.error({ version }, `clients file not applied, the clients stay as they were: ${error.message}`)
    },
    failed: (error, version) => {
      count.inc({ outcome: 'failed' })
      log.error({ version, err: loggableError(error) }, 'clients file not applied: the store refused; trying again at the next poll')
    }
  })
  app.addHook('onReady', async () => { reconciler.start() })
  app.addHook('onClose', async () => { await reconciler.stop() })
}, { name: 'clients-file', dependencies: ['config', 'metrics', 'storage'] })
