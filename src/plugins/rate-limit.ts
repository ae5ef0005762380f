import fastifyRateLimit from '@fastify/rate-limit'
import type { FastifyRequest, onRequestHookHandler } from 'fastify'
import fp from 'fastify-plugin'
import { clientAddress } from '../http/client-address.ts'
import { HttpError } from '../http/errors.ts'
import { BlockedKeys } from '../storage/memory/blocked-keys.ts'
import { SWEEP_INTERVAL_MS } from '../storage/memory/expiry-sweep.ts'

/** What the hook needs of a route's `config.rateLimit`. */
interface RouteLimit {
  max: unknown
}

const UNITS: Array<[seconds: number, name: string]> = [[86_400, 'day'], [3_600, 'hour'], [60, 'minute'], [1, 'second']]

/** "1 minute", "45 seconds": a wait in its largest whole unit, rounded, as @fastify/rate-limit words it. */
function waitText (seconds: number): string {
  const [unitSeconds, name] = UNITS.find(([unit]) => seconds >= unit) ?? UNITS[UNITS.length - 1]
  const count = Math.round(seconds / unitSeconds)
  return `${count} ${name}${count === 1 ? '' : 's'}`
}

function tooManyAttempts (waitSeconds: number): string {
  return `Too many login attempts, retry in ${waitText(waitSeconds)}`
}

/**
 * @fastify/rate-limit on the rolling-window store of app.stores (see limits/rolling-window.ts).
 * Not global: a route opts in with `config.rateLimit`. The limiter runs in onRequest, before the
 * body is parsed or any password hashed, and a store error fails the request (503) rather than
 * letting it through.
 *
 * A client the limiter has rejected stays rejected until its oldest counted attempt ages out (a
 * rejected attempt is not counted), so until then its attempts are answered by a hook that runs
 * first, with the limiter's very response (status, RateLimit headers, Retry-After, message) and
 * without the limiter's store, its thrown error and the error handler: a client hammering the
 * limit costs about as little as any answer can.
 */
export default fp(async function rateLimitPlugin (app) {
  const ipv6Prefix = app.config.RATE_LIMIT_IPV6_PREFIX
  const blocked = new BlockedKeys()
  // Per route, since each route has its own limit. The route's path is passed in where it is known
  // beforehand: request.routeOptions builds an object on every read.
  const blockedKey = (request: FastifyRequest, url = request.routeOptions.url) => `${request.method} ${url} ${clientAddress(request.ip, ipv6Prefix)}`

  await app.register(fastifyRateLimit, {
    global: false,
    store: app.stores.transient.rateLimit,
    skipOnError: false,
    // request.ip honours TRUST_PROXY: a forwarded address counts only when a trusted proxy sent it.
    keyGenerator: (request) => clientAddress(request.ip, ipv6Prefix),
    // The IETF RateLimit header fields (ratelimit-limit, -remaining, -reset) besides Retry-After.
    enableDraftSpec: true,
    errorResponseBuilder: (request, context) => {
      blocked.block(blockedKey(request), Date.now(), context.ttl)
      return new HttpError(context.statusCode, tooManyAttempts(Math.ceil(context.ttl / 1000)))
    }
  })

  app.addHook('onRoute', (routeOptions) => {
    const limit = (routeOptions.config as { rateLimit?: RouteLimit } | undefined)?.rateLimit
    // Only a route with a fixed limit: one with none, or a max computed per request, is the limiter's alone.
    const max = limit?.max
    if (typeof max !== 'number') return
    const { url } = routeOptions
    const answerKnownRejected: onRequestHookHandler = (request, reply, done) => {
      const retryAfterMs = blocked.retryAfterMs(blockedKey(request, url), Date.now(), SWEEP_INTERVAL_MS)
      if (retryAfterMs === 0) {
        done()
        return
      }
      const seconds = Math.ceil(retryAfterMs / 1000)
      void reply.code(429).headers({
        'ratelimit-limit': String(max),
        'ratelimit-remaining': '0',
        'ratelimit-reset': String(seconds),
        'retry-after': String(seconds)
      }).send({ message: tooManyAttempts(seconds) })
    }
    const others = routeOptions.onRequest ?? []
    routeOptions.onRequest = [answerKnownRejected, ...(Array.isArray(others) ? others : [others])]
  })
}, { name: 'rate-limit', dependencies: ['config', 'storage', 'errors'] })
