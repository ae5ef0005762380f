// First: it may restart the process with its memory settings before anything else is loaded.
import './users/argon2-memory.ts'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import closeWithGrace from 'close-with-grace'
import { loadConfig, type Config } from './config.ts'
import { loggableError } from './observability/log-fields.ts'
import { describeStorage, lockStorage } from './storage/stores.ts'
import { startMetricsServer } from './observability/metrics-server.ts'
import { hashingCapacity, lowerThreadpoolPriority, sizeThreadpool } from './users/argon2-threads.ts'

/** Each listener's port setting, the host setting it binds when that is set (HOST otherwise), and how to turn it off. */
const LISTENERS = {
  PORT: { hostSetting: undefined, otherwise: '' },
  METRICS_PORT: { hostSetting: 'METRICS_HOST', otherwise: ', or METRICS_PORT=0 to turn the metrics listener off' },
  ADMIN_PORT: { hostSetting: 'ADMIN_HOST', otherwise: ', or unset ADMIN_PORT to turn the admin listener off' }
} as const

/** A listen failure as one line naming the setting at fault and what to do. */
function listenError (error: NodeJS.ErrnoException, setting: keyof typeof LISTENERS, config: Config): Error {
  const port = config[setting]
  const { otherwise } = LISTENERS[setting]
  const own = LISTENERS[setting].hostSetting
  const hostSetting = own !== undefined && config[own] !== undefined ? own : 'HOST'
  const host = config[hostSetting]
  switch (error.code) {
    case 'EADDRINUSE':
      return new Error(`${setting}=${port} is already in use on ${host} (by another process, or another instance of this service on this host): set ${setting} to a free port${otherwise}`)
    case 'EACCES':
      return new Error(`${setting}=${port} needs privileges this process does not have: set ${setting} to a port above 1023${otherwise}`)
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
    case 'EAI_NONAME':
      return new Error(`${hostSetting}=${host} does not resolve to an address (${error.code}): set ${hostSetting} to an address of this machine, 0.0.0.0 (every IPv4 interface) or :: (every interface)`)
    case 'EADDRNOTAVAIL':
      return new Error(`${hostSetting}=${host} is not an address of this machine: set ${hostSetting} to one of its addresses, 0.0.0.0 (every IPv4 interface) or :: (every interface)`)
    default:
      return new Error(`cannot listen on ${hostSetting}=${host} ${setting}=${port}: ${error.code ?? error.message}`)
  }
}

/**
 * One memory-reducing collection, once the service is built and before it listens. Loading and
 * compiling it grows V8's young generation to its maximum (two 8 MiB semi-spaces) and leaves a
 * third of the old generation's pages free but held; collected and compacted here, both start
 * small, and under load the young generation grows back only as far as the load needs. V8 runs
 * this collection itself only for a process that runs short of memory. Its gc function comes from
 * a context made while --expose-gc is on, as jest's leak detector gets it, so that no global gc
 * is left to any other code. Returns how long it took (ms).
 */
function compactHeap (): number {
  setFlagsFromString('--expose-gc')
  const gc = runInNewContext('gc') as (options: { type: 'major', execution: 'sync', flavor: 'last-resort' }) => void
  setFlagsFromString('--no-expose-gc')
  const started = performance.now()
  gc({ type: 'major', execution: 'sync', flavor: 'last-resort' })
  return performance.now() - started
}

/** Process concerns only: config -> app -> listen -> graceful shutdown. */
async function main (): Promise<void> {
  const config = loadConfig()
  const hashing = hashingCapacity(config)
  // Before anything starts libuv's threadpool: it reads its size once, when it starts.
  sizeThreadpool(hashing.threads)
  // Before the app opens anything: a second embedded instance on one DATA_DIR stops here.
  const storageLock = await lockStorage(config)
  // Loaded only now, so that a bad setting stops the process before the whole service is loaded.
  const { buildApp } = await import('./app.ts')
  const app = await buildApp(config)
  const loweredThreads = await lowerThreadpoolPriority()
  app.log.info({ argon2Threads: hashing.threads, loginQueueMax: hashing.queueMax, loweredThreads }, 'argon2 hashing threads ready')
  app.log.info(describeStorage(config))
  const metricsServer = config.METRICS_PORT > 0
    ? await startMetricsServer(app.metrics.registry, config.METRICS_HOST ?? config.HOST, config.METRICS_PORT).catch((error: NodeJS.ErrnoException) => { throw listenError(error, 'METRICS_PORT', config) })
    : undefined
  // The admin API on its own listener, as the metrics are: never on the port the ingress routes to.
  const adminApp = config.ADMIN_PORT !== undefined ? await (await import('./admin/app.ts')).buildAdminApp(app) : undefined

  // Shutdown closes the connections that are idle at that moment; those whose requests were in
  // flight are closed once every request has been answered, so kept-alive clients do not hold the
  // process until the keep-alive timeout. The pause lets a request pipelined behind the last one
  // start, so its connection is not taken for idle.
  let shuttingDown = false
  let inFlight = 0
  const closeIdleWhenDone = () => {
    if (inFlight === 0) app.server.closeIdleConnections()
  }
  app.addHook('onRequest', (_request, _reply, done) => {
    inFlight++
    done()
  })
  app.addHook('onResponse', (_request, _reply, done) => {
    inFlight--
    if (shuttingDown && inFlight === 0) setTimeout(closeIdleWhenDone, 250)
    done()
  })

  // SIGTERM: readiness turns false, the server stops accepting, in-flight requests finish, then
  // every plugin closes what it opened (Redis). Past SHUTDOWN_TIMEOUT_MS the process exits anyway.
  closeWithGrace({ delay: config.SHUTDOWN_TIMEOUT_MS }, async ({ signal, err }) => {
    if (err !== undefined) app.log.error({ err: loggableError(err) }, 'shutting down after an error')
    else app.log.info({ signal }, 'shutting down')
    shuttingDown = true
    metricsServer?.close()
    await adminApp?.close()
    await app.close()
    await storageLock.release()
  })

  await app.ready()
  await adminApp?.ready()
  app.log.info({ durationMs: Math.round(compactHeap()) }, 'heap compacted before listening')

  await adminApp?.listen({ port: config.ADMIN_PORT, host: config.ADMIN_HOST ?? config.HOST }).catch((error: NodeJS.ErrnoException) => { throw listenError(error, 'ADMIN_PORT', config) })
  await app.listen({ port: config.PORT, host: config.HOST }).catch((error: NodeJS.ErrnoException) => { throw listenError(error, 'PORT', config) })
}

main().catch((error: Error) => {
  // Configuration, key, DATA_DIR and listen errors name the setting at fault, one line each:
  // print them plainly and exit.
  for (const line of error.message.split('\n')) console.error(`auth-service failed to start: ${line}`)
  process.exit(1)
})
