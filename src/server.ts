import closeWithGrace from 'close-with-grace'
import { buildApp } from './app.js'
import { loadConfig } from './config.js'

/** Process concerns only: config -> app -> listen -> graceful shutdown. */
async function main (): Promise<void> {
  const config = loadConfig()
  const app = await buildApp(config)
  app.log.info(
    config.REDIS_URL !== undefined
      ? 'Redis mode: users and rate limits are shared by every replica through Redis'
      : `Embedded mode: single instance, users kept in ${config.DATA_DIR}; set REDIS_URL to run several replicas`
  )

  closeWithGrace({ delay: 10_000 }, async ({ signal, err }) => {
    if (err !== undefined) app.log.error({ err }, 'shutting down after an error')
    else app.log.info({ signal }, 'shutting down')
    await app.close()
  })

  await app.listen({ port: config.PORT, host: config.HOST })
}

main().catch((error: Error) => {
  // Configuration and key errors name the variable at fault; print them plainly and exit.
  console.error(`auth-service failed to start: ${error.message}`)
  process.exit(1)
})
