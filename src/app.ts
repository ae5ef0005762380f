import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import Fastify, { LogController, type FastifyInstance, type FastifyServerOptions } from 'fastify'
import { destination } from 'pino'
import { randomUUID } from 'node:crypto'
import type { Socket } from 'node:net'
import { listSetting, readSettingFile, type Config } from './config.ts'
import { schemaOptions } from './http/schema-compilers.ts'
import { proxyTrust } from './http/trusted-proxies.ts'
import { printable } from './observability/log-fields.ts'
import accountThrottlePlugin from './plugins/account-throttle.ts'
import clientsFilePlugin from './plugins/clients-file.ts'
import configPlugin from './plugins/config.ts'
import errorsPlugin from './plugins/errors.ts'
import keyedHashPlugin from './plugins/keyed-hash.ts'
import metricsPlugin from './plugins/metrics.ts'
import oauthPlugin from './plugins/oauth.ts'
import openapiPlugin from './plugins/openapi.ts'
import rateLimitPlugin from './plugins/rate-limit.ts'
import rejectionLogPlugin from './plugins/rejection-log.ts'
import securityHeadersPlugin from './plugins/security-headers.ts'
import signingKeysPlugin from './plugins/signing-keys.ts'
import storagePlugin from './plugins/storage.ts'
import tokensPlugin from './plugins/tokens.ts'
import usersPlugin from './plugins/users.ts'
import healthRoutes from './routes/health.ts'
import jwksRoute from './routes/well-known/jwks.ts'
import loginRoute from './routes/auth/login.ts'
import oauthIntrospectionRoutes from './routes/oauth2/introspection.ts'
import oauthMetadataRoute from './routes/well-known/oauth-metadata.ts'
import oauthTokenRoute from './routes/oauth2/token.ts'
import sessionRoutes from './routes/auth/session.ts'
import { generatedKeyPlace } from './storage/stores.ts'
import { loadKeySource, readKeyFile, type KeySource } from './tokens/keys.ts'

/**
 * Values that may carry secrets, removed from every log line should anything ever log them.
 * Explicit paths only: wildcard paths cost pino's redaction about 5% of the CPU of a rejected login.
 */
export const REDACTED_LOG_PATHS = ['req.headers.authorization', 'req.headers.cookie', 'password', 'accessToken', 'token']

/**
 * A login attempt is logged once, by its audit line (src/routes/auth/login.ts), so is a token request
 * (src/routes/oauth2/token.ts), and probes not at all:
 * the per-request pair of lines would triple the logging cost of every rate-limited attempt.
 */
const logController = new LogController({
  disableRequestLogging: (request) => {
    const route = request.routeOptions.url
    return route === '/api/auth/login' || route === '/oauth2/token' || route?.startsWith('/health/') === true
  }
})

/**
 * How long past the keep-alive timeout it advertises (`Keep-Alive: timeout=5`) the server still
 * keeps an idle connection open. A client plans to reuse a connection until about that timeout
 * (Node's fetch until 2 s before it, on timers that fire up to a second late, later still when its
 * event loop is busy); a request it sends just as the server closes is cut, so the server closes
 * well after any client following the hint stops reusing. Node's own default is 1 s.
 */
const KEEP_ALIVE_GRACE_MS = 5_000

/** Comma-separated TRUST_PROXY to what fastify expects: false (nobody) or the check of a hop's address. */
function trustedProxies (setting: string): ReturnType<typeof proxyTrust> | false {
  const proxies = listSetting(setting)
  return proxies.length > 0 ? proxyTrust(proxies) : false
}

/** Builds the service: plugins, then routes. Listening and process signals belong to server.ts. */
export async function buildApp (config: Config, logger?: FastifyServerOptions['logger']): Promise<FastifyInstance> {
  // Before anything opens a connection, so a missing or unfit key stops the start cleanly.
  const keys = await loadKeySource(config, generatedKeyPlace(config))
  // By default JSON lines to stdout, written asynchronously: under load, lines that arrive while a
  // write is in flight go out together instead of one system call each. pino flushes what is
  // pending when the process exits; the app flushes it when it closes.
  const logStream = logger === undefined ? destination({ sync: false }) : undefined
  const app = Fastify({
    logger: logger ?? { level: config.LOG_LEVEL, redact: REDACTED_LOG_PATHS, stream: logStream },
    logController,
    https: config.TLS_CERT_FILE !== undefined && config.TLS_KEY_FILE !== undefined
      ? { cert: await readSettingFile('TLS_CERT_FILE', config.TLS_CERT_FILE), key: await readKeyFile('TLS_KEY_FILE', config.TLS_KEY_FILE) }
      : null,
    // Always the service's own, so no client can make its requests look like another's in the logs;
    // a client's X-Request-Id is logged beside it as clientRequestId (see below).
    genReqId: () => randomUUID(),
    trustProxy: trustedProxies(config.TRUST_PROXY),
    connectionTimeout: 10_000,
    requestTimeout: 10_000,
    keepAliveTimeout: 5_000,
    // During shutdown, requests on open connections are served, not answered with fastify's own
    // 503 body: in-flight logins finish and /health/ready reports "Shutting down" as { message }.
    return503OnClosing: false,
    ...schemaOptions
  }).withTypeProvider<TypeBoxTypeProvider>()
  // Node 24 reads it for each new connection; fastify has no option for it.
  Object.assign(app.server, { keepAliveTimeoutBuffer: KEEP_ALIVE_GRACE_MS })
  // connectionTimeout closes a connection that sends nothing for that long; Node's own handler also
  // closed one whose request had arrived and was still being answered (a login waiting on a starved
  // threadpool), cutting it on its way. Handled here: only a connection with no answer pending
  // (`_httpMessage`, the response Node has attached to it) is closed. A received request is bounded
  // by its own deadlines (the login's queue, Redis's command timeout).
  app.server.on('timeout', (socket: Socket & { _httpMessage?: unknown }) => {
    if (socket._httpMessage == null) socket.destroy()
  })
  // Logins are JSON only: anything else is a 415, not a string body that fails validation.
  app.removeContentTypeParser('text/plain')
  app.addHook('onRequest', (request, _reply, done) => {
    const clientRequestId = request.headers['x-request-id']
    if (typeof clientRequestId === 'string') request.log = request.log.child({ clientRequestId: printable(clientRequestId) })
    done()
  })

  if (logStream !== undefined) app.addHook('onClose', async () => { await new Promise<void>((resolve) => logStream.flush(() => resolve())) })
  try {
    await registerPluginsAndRoutes(app, config, keys)
  } catch (error) {
    // A start that stops part-way closes what was opened before (the Redis connection), as a
    // process exiting would: a test or a caller building the app again is not left with it.
    await app.close()
    throw error
  }
  return app
}

/** The plugins, then the routes, in the order they depend on each other. */
async function registerPluginsAndRoutes (app: FastifyInstance, config: Config, keys: KeySource): Promise<void> {
  await app.register(configPlugin, { config })
  await app.register(metricsPlugin)
  await app.register(rejectionLogPlugin)
  await app.register(errorsPlugin)
  await app.register(securityHeadersPlugin)
  await app.register(storagePlugin)
  await app.register(usersPlugin)
  await app.register(signingKeysPlugin, { keys })
  await app.register(tokensPlugin)
  await app.register(keyedHashPlugin, { keys })
  await app.register(rateLimitPlugin)
  await app.register(accountThrottlePlugin)
  await app.register(oauthPlugin)
  await app.register(clientsFilePlugin)
  await app.register(openapiPlugin)

  await app.register(healthRoutes)
  await app.register(loginRoute)
  await app.register(sessionRoutes)
  await app.register(jwksRoute)
  await app.register(oauthMetadataRoute)
  await app.register(oauthTokenRoute)
  await app.register(oauthIntrospectionRoutes)
}
