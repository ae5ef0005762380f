import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import fp from 'fastify-plugin'
import { HttpError } from '../http/errors.ts'
import { HealthResponse, errorResponse } from '../schemas/auth.ts'

/** Liveness: the process serves HTTP. Readiness: it can serve logins (Redis accepts writes, not shutting down). */
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
      summary: 'Readiness probe: 503 while Redis is unreachable or refuses writes',
      description: 'Answers `ready` when this replica can serve logins: Redis accepts a write (in Redis mode; not while it is unreachable, out of memory, read-only or refusing the credentials) and the process is not shutting down. Load balancers stop sending traffic while it answers 503.',
      security: [],
      response: {
        200: Type.Ref(HealthResponse, { description: 'Ready to serve logins' }),
        503: errorResponse('Redis is unreachable or refuses writes, or the process is shutting down')
      }
    }
  }, async () => {
    if (closing) throw new HttpError(503, 'Shutting down')
    // A write, not a ping: a Redis that answers but refuses writes (OOM, READONLY, NOAUTH) fails
    // every login. Checked every second in the background: the probe does not wait on Redis.
    const refusal = await app.writeProbe.latest()
    // The reason goes to the log (the write probe logs each change), not to whoever can reach the probe.
    if (refusal !== undefined) throw new HttpError(503, 'Not ready: Redis is unreachable or refuses writes')
    return { status: 'ready' }
  })
}

export default fp(healthRoutes, { name: 'health-routes', dependencies: ['storage'] })
