import { setTimeout as sleep } from 'node:timers/promises'
import fp from 'fastify-plugin'
import { Gauge } from 'prom-client'
import { loggableError } from '../observability/log-fields.ts'
import { isStorageUnavailable } from '../storage/errors.ts'
import { longestTokenLifetime, rotationSchedule } from '../tokens/key-lifecycle.ts'
import { ManagedKeys } from '../tokens/managed-keys.ts'
import { JWKS_MAX_AGE_SECONDS, type KeySource, type SigningKeys } from '../tokens/keys.ts'

declare module 'fastify' {
  interface FastifyInstance {
    /** The keys that sign and verify tokens and make the JWKS: key files, or the service's own rotating keys. */
    signingKeys: SigningKeys
  }
}

/**
 * Key files as loaded, or managed keys (JWT_KEY_ROTATION_SECONDS) started on the store: the start
 * waits until Redis answers, and stops when ManagedKeys.start refuses. Managed keys add their metrics.
 */
export default fp<{ keys: KeySource }>(async function signingKeysPlugin (app, { keys }) {
  if (!keys.managed) {
    app.decorate('signingKeys', { keyRing: keys.keyRing, jwksMaxAgeSeconds: JWKS_MAX_AGE_SECONDS })
    return
  }
  const { JWT_KEY_ROTATION_SECONDS: interval, JWT_ALGORITHM: algorithm, TOKEN_TTL_SECONDS: tokenTtlSeconds } = app.config
  const { clients, signingKeys: store } = app.stores.durable
  const managed = new ManagedKeys({
    store,
    kek: keys.kek,
    algorithm,
    schedule: rotationSchedule(interval),
    longestTokenLifetime: async () => longestTokenLifetime(tokenTtlSeconds, await clients.list()),
    fileKey: keys.fileKey,
    log: app.log
  })
  for (let waiting = false; ; waiting = true) {
    try {
      await managed.start()
      break
    } catch (error) {
      if (!isStorageUnavailable(error)) throw error
      if (!waiting) app.log.error({ err: loggableError(error) }, 'waiting for Redis to read the signing keys')
      await sleep(1000)
    }
  }
  app.addHook('onClose', async () => { managed.stop() })

  const { registry } = app.metrics
  registry.registerMetric(new Gauge({
    name: 'auth_signing_key_age_seconds',
    help: 'Age of each published managed signing key, by kid and state (next, current, retired)',
    labelNames: ['kid', 'state'] as const,
    registers: [],
    collect () {
      this.reset()
      const now = Date.now()
      for (const { kid, state, createdAt } of managed.statuses(now)) this.set({ kid, state }, (now - createdAt) / 1000)
    }
  }))
  registry.registerMetric(new Gauge({
    name: 'auth_signing_key_switch_seconds',
    help: 'Seconds until the next managed signing key starts signing',
    registers: [],
    collect () {
      const now = Date.now()
      this.set(((managed.switchAt(now) ?? now) - now) / 1000)
    }
  }))
  app.decorate('signingKeys', managed)
}, { name: 'signing-keys', dependencies: ['config', 'metrics', 'storage'] })
