import type { RedisConnection } from './connection.ts'
import type { FastifyBaseLogger } from 'fastify'

/**
 * What in these Redis settings would lose the state that must survive (accounts, revoked token
 * ids): a restart or memory pressure would delete accounts and let logged-out tokens in again.
 * Empty when Redis keeps every write on disk and never evicts.
 */
export function persistenceRisks (settings: Record<string, string>): string[] {
  const risks: string[] = []
  const { appendonly, save, 'maxmemory-policy': evictionPolicy } = settings
  if (appendonly === 'no' && save === '') {
    risks.push('appendonly is no and save is empty: Redis keeps nothing on disk, so a restart deletes every account and un-revokes every logged-out token')
  } else if (appendonly === 'no') {
    risks.push(`appendonly is no (only RDB snapshots, save "${save}"): a crash loses the accounts created and tokens revoked since the last snapshot`)
  }
  if (evictionPolicy !== undefined && evictionPolicy !== 'noeviction') {
    risks.push(`maxmemory-policy is ${evictionPolicy}: under memory pressure Redis evicts keys, accounts and revoked token ids among them`)
  }
  return risks
}

/**
 * Checks, whenever the connection is (re)established, that Redis keeps what must survive, and logs a warning
 * naming what is unsafe. Managed Redis often forbids CONFIG: that is said once, not on every reconnect.
 */
export function watchRedisPersistence (redis: RedisConnection, log: FastifyBaseLogger): void {
  let configForbiddenSaid = false
  redis.on('ready', () => {
    redis.config('GET', 'appendonly', 'save', 'maxmemory-policy').then((reply) => {
      const values = reply as string[]
      const settings: Record<string, string> = {}
      for (let i = 0; i + 1 < values.length; i += 2) settings[values[i]] = values[i + 1]
      const risks = persistenceRisks(settings)
      if (risks.length > 0) {
        log.warn({ redisPersistence: risks }, `Redis may lose accounts and revocations: ${risks.join('; ')}. Run it with appendonly yes and maxmemory-policy noeviction (see README, Operations)`)
      }
    }, (error: Error) => {
      // A lost connection is reported by the connection's error handler; the next ready checks again.
      if (error.name !== 'ReplyError' || configForbiddenSaid) return
      configForbiddenSaid = true
      // The message only: ioredis errors carry the command's arguments.
      log.warn(`Redis does not allow CONFIG GET (${error.message}), so the service cannot check that Redis keeps accounts and revocations on disk: make sure it runs with appendonly yes and maxmemory-policy noeviction`)
    })
  })
}
