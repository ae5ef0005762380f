import fp from 'fastify-plugin'
import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client'

export interface Metrics {
  registry: Registry
  loginAttempts: Counter<'outcome'>
  argon2Duration: Histogram<'operation'>
  loginShed: Counter<'reason'>
  redisErrors: Counter
  unknownKeyVerifications: Counter
  clientsFileReconciliations: Counter<'outcome'>
  adminOperations: Counter<'resource' | 'operation' | 'outcome'>
}

declare module 'fastify' {
  interface FastifyInstance {
    metrics: Metrics
  }
}

/**
 * Prometheus metrics in a registry of this app's own (served by server.ts on METRICS_PORT, not on
 * the public port): login attempts by outcome, request latency, argon2 time, Redis errors, tokens
 * of unknown keys, and the process metrics (managed signing keys add theirs: plugins/signing-keys.ts).
 */
export default fp(async function metricsPlugin (app) {
  const registry = new Registry()
  collectDefaultMetrics({ register: registry })
  const loginAttempts = new Counter({
    name: 'auth_login_attempts_total',
    help: 'Login attempts by outcome',
    labelNames: ['outcome'] as const,
    registers: [registry]
  })
  const requestDuration = new Histogram({
    name: 'auth_http_request_duration_seconds',
    help: 'Time to answer an HTTP request, by route and status',
    labelNames: ['method', 'route', 'status_code'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [registry]
  })
  const argon2Duration = new Histogram({
    name: 'auth_argon2_duration_seconds',
    help: 'Time of one argon2id hash or verification, including the wait for a threadpool slot',
    labelNames: ['operation'] as const,
    buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [registry]
  })
  const loginShed = new Counter({
    name: 'auth_login_shed_total',
    help: 'Login attempts answered 503 without hashing: queue_full (LOGIN_QUEUE_MAX verifications already waiting) or deadline (waited longer than a client waits)',
    labelNames: ['reason'] as const,
    registers: [registry]
  })
  const redisErrors = new Counter({
    name: 'auth_redis_errors_total',
    help: 'Redis connection errors and failed commands',
    registers: [registry]
  })

  const unknownKeyVerifications = new Counter({
    name: 'auth_token_unknown_kid_total',
    help: 'Token verifications that met a kid no published key has: a token of a removed or revoked key, or not of this service',
    registers: [registry]
  })

  const clientsFileReconciliations = new Counter({
    name: 'auth_clients_file_reconciliations_total',
    help: 'Reconciliations with CLIENTS_FILE by outcome: changed (this replica applied changes), unchanged (nothing to change), invalid (the file does not parse: nothing applied), failed (the store refused: retried)',
    labelNames: ['outcome'] as const,
    registers: [registry]
  })

  const adminOperations = new Counter({
    name: 'auth_admin_operations_total',
    help: 'Admin API operations by resource (clients, users, keys), operation (list, get, create, replace, delete, rotate_secret, retire_secret, change_password, disable, enable, revoke) and outcome: done, refused (4xx: no token, no scope, a stale If-Match, a managed client...) or failed (5xx)',
    labelNames: ['resource', 'operation', 'outcome'] as const,
    registers: [registry]
  })

  app.decorate('metrics', { registry, loginAttempts, argon2Duration, loginShed, redisErrors, unknownKeyVerifications, clientsFileReconciliations, adminOperations })

  app.addHook('onResponse', (request, reply, done) => {
    requestDuration.observe({
      method: request.method,
      route: request.routeOptions.url ?? 'unknown',
      status_code: reply.statusCode
    }, reply.elapsedTime / 1000)
    done()
  })
}, { name: 'metrics' })
