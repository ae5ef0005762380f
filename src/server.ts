import closeWithGrace from 'close-with-grace'
import { buildApp } from './app.js'
import { loadConfig, redisTopology } from './config.js'
import { loggableError } from './redis-client.js'
import { startMetricsServer } from './metrics-server.js'

/** Process concerns only: config -> app -> listen -> graceful shutdown. */
async function main (): Promise<void> {
  const config = loadConfig()
  const app = await buildApp(config)
  app.log.info(
    redisTopology(config) !== undefined
      ? `Redis mode (${redisTopology(config)}): users, rate limits, throttling and revocations are shared by every replica through Redis`
      : `Embedded mode: single instance, users kept in ${config.DATA_DIR}; set REDIS_URL (or REDIS_SENTINELS, REDIS_CLUSTER_NODES) to run several replicas`
  )
  const metricsServer = config.METRICS_PORT > 0 ? await startMetricsServer(app.metrics.registry, config.HOST, config.METRICS_PORT) : undefined

  // SIGTERM: readiness turns false, the server stops accepting, in-flight requests finish, then
  // every plugin closes what it opened (Redis). Past SHUTDOWN_TIMEOUT_MS the process exits anyway.
  closeWithGrace({ delay: config.SHUTDOWN_TIMEOUT_MS }, async ({ signal, err }) => {
    if (err !== undefined) app.log.error({ err: loggableError(err) }, 'shutting down after an error')
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
