import fastifyRateLimit from '@fastify/rate-limit'
import fp from 'fastify-plugin'
import { clientKey } from '../client-key.js'
import { rollingWindowStore } from '../rate-limit/rolling-window-store.js'
import { HttpError } from './errors.js'

/**
 * @fastify/rate-limit on a rolling-window store: in Redis (shared by every replica) in Redis mode,
 * in-process in embedded mode. Not global: a route opts in with `config.rateLimit`. The limiter
 * runs in onRequest, before the body is parsed or any password hashed, and a store error fails
 * the request (503) rather than letting it through.
 */
export default fp(async function rateLimitPlugin (app) {
  await app.register(fastifyRateLimit, {
    global: false,
    store: rollingWindowStore({ redis: app.redis, keyPrefix: `${app.config.REDIS_KEY_PREFIX}rate-limit:` }),
    skipOnError: false,
    // request.ip honours TRUST_PROXY: a forwarded address counts only when a trusted proxy sent it.
    keyGenerator: (request) => clientKey(request.ip, app.config.RATE_LIMIT_IPV6_PREFIX),
    // The IETF RateLimit header fields (ratelimit-limit, -remaining, -reset) besides Retry-After.
    enableDraftSpec: true,
    errorResponseBuilder: (_request, context) =>
      new HttpError(context.statusCode, `Too many login attempts, retry in ${context.after}`)
  })
}, { name: 'rate-limit', dependencies: ['config', 'redis', 'errors'] })
