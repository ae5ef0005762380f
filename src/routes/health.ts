import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import fp from 'fastify-plugin'
import { HttpError } from '../plugins/errors.js'
import { HealthResponse, errorResponse } from '../schemas/auth.js'

/** Liveness: the process serves HTTP. Readiness: it can serve logins (Redis reachable, not shutting down). */
const healthRoutes: FastifyPluginAsyncTypebox = async (app) => {
  // Set when shutdown begins, so load balancers stop sending logins before the server stops.
  // (A preClose hook runs only in the root context, hence the fastify-plugin wrapper below.)
  let closing = false
  app.addHook('preClose', async () => { closing = true })

  app.get('/health/live', {
    schema: {
      operationId: 'live',
      tags: ['health'],
      summary: 'Liveness probe',
      description: 'Answers `ok` while the process serves HTTP, whatever the state of Redis: a failed liveness probe restarts the process, which would not bring Redis back.',
      security: [],
      response: { 200: Type.Ref(HealthResponse, { description: 'The process serves HTTP' }) }
    }
  }, async () => ({ status: 'ok' }))

  app.get('/health/ready', {
    schema: {
      operationId: 'ready',
      tags: ['health'],
      summary: 'Readiness probe: false while Redis is unreachable',
      description: 'Answers `ready` when this replica can serve logins: Redis answers a PING (in Redis mode) and the process is not shutting down. Load balancers stop sending traffic while it answers 503.',
      security: [],
      response: {
        200: Type.Ref(HealthResponse, { description: 'Ready to serve logins' }),
        503: errorResponse('Redis is unreachable or the process is shutting down')
      }
    }
  }, async () => {
    if (closing) throw new HttpError(503, 'Shutting down')
    // A ping, not the client's status: a hung Redis keeps the connection open but answers nothing.
    await app.redis?.ping()
    return { status: 'ready' }
  })
}

export default fp(healthRoutes, { name: 'health-routes' })
