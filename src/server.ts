import closeWithGrace from 'close-with-grace'
import { buildApp } from './app.js'
import { loadConfig } from './config.js'
import { startMetricsServer } from './metrics-server.js'
import { hashingCapacity, lowerThreadpoolPriority, sizeThreadpool } from './users/argon2-threads.js'

/** Process concerns only: config -> app -> listen -> graceful shutdown. */
async function main (): Promise<void> {
  const config = loadConfig()
  const hashing = hashingCapacity(config)
  // Before anything starts libuv's threadpool: it reads its size once, when it starts.
  sizeThreadpool(hashing.threads)
  const app = await buildApp(config)
  const loweredThreads = await lowerThreadpoolPriority()
  app.log.info({ argon2Threads: hashing.threads, loginQueueMax: hashing.queueMax, loweredThreads }, 'argon2 hashing threads ready')
  app.log.info(
    config.REDIS_URL !== undefined
      ? 'Redis mode: users, rate limits, throttling and revocations are shared by every replica through Redis'
      : `Embedded mode: single instance, users kept in ${config.DATA_DIR}; set REDIS_URL to run several replicas`
  )
  const metricsServer = config.METRICS_PORT > 0 ? await startMetricsServer(app.metrics.registry, config.METRICS_HOST ?? config.HOST, config.METRICS_PORT) : undefined

  // SIGTERM: readiness turns false, the server stops accepting, in-flight requests finish, then
  // every plugin closes what it opened (Redis). Past SHUTDOWN_TIMEOUT_MS the process exits anyway.
  closeWithGrace({ delay: config.SHUTDOWN_TIMEOUT_MS }, async ({ signal, err }) => {
    if (err !== undefined) app.log.error({ err }, 'shutting down after an error')
    else app.log.info({ signal }, 'shutting down')
    metricsServer?.close()
    await app.close()
  })

  await app.listen({ port: config.PORT, host: config.HOST })
}

main().catch((error: Error) => {
  // Configuration and key errors name the variable at fault; print them plainly and exit.
  console.error(`auth-service failed to start: ${error.message}`)
  process.exit(1)
})
