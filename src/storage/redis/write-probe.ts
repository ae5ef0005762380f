import type { FastifyBaseLogger } from 'fastify'
import type { RedisConnection } from './connection.ts'

/** The probe key outlives no probe interval worth speaking of: it only shows that a write went through. */
const PROBE_KEY_TTL_MS = 10_000
/**
 * Redis counts the command being read toward its used memory, so near maxmemory a tiny SET still
 * fits where a login's scripts (some hundred bytes of arguments) do not: the probe writes more than
 * a login does, and is refused first.
 */
const PROBE_VALUE = 'probe'.repeat(256)

/**
 * Why Redis refused a write, in words fit for a log line and the readiness answer: the reply's
 * error code or the connection error's code only, never the error object (ioredis attaches the
 * command's arguments to it, an AUTH password included).
 */
export function writeRefusalReason (error: unknown): string {
  const { name, message, code } = error as { name?: string, message?: string, code?: string }
  const replyCode = name === 'ReplyError' ? /^[A-Z]+/.exec(message ?? '')?.[0] : undefined
  switch (replyCode) {
    case 'OOM': return 'Redis refuses writes: out of memory (maxmemory reached)'
    case 'READONLY': return 'Redis refuses writes: connected to a read-only replica'
    case 'NOAUTH': case 'WRONGPASS': return 'Redis refuses writes: authentication required or rejected'
    case 'NOPERM': return 'Redis refuses writes: the ACL user may not write the service\'s keys'
    case 'MISCONF': return 'Redis refuses writes: it cannot persist to disk (MISCONF)'
    case undefined: return `Redis is unreachable (${code ?? (name === 'Error' ? 'no connection' : name ?? 'unknown error')})`
    default: return `Redis refuses writes (${replyCode})`
  }
}

/**
 * How often a replica checks that Redis accepts a write. /health/ready answers with the latest
 * check, at most this old (plus the command timeout of one that waits on Redis), so that a probe
 * never waits on Redis: its Redis round trip was most of the probe's time while logins saturate
 * the cores.
 */
export const WRITE_PROBE_INTERVAL_MS = 1_000

/**
 * Readiness as logins need it: not "Redis answers PING" but "Redis accepts a write", because every
 * login writes (rate limit, throttle). Each check SETs a short-lived key; any refusal (OOM,
 * READONLY, NOAUTH, no connection) makes the service not ready until a later check succeeds. One
 * log line per change of state, naming the reason. Checks run in the background once started.
 */
export class RedisWriteProbe {
  /** undefined while writable; the reason while not; null before the first check. */
  private refusal: string | undefined | null = null
  private firstCheck: Promise<string | undefined> | undefined
  private timer: NodeJS.Timeout | undefined
  private stopped = false

  private readonly redis: RedisConnection
  private readonly key: string
  private readonly log: FastifyBaseLogger

  constructor (redis: RedisConnection, key: string, log: FastifyBaseLogger) {
    this.redis = redis
    this.key = key
    this.log = log
  }

  /** Checks now, then every WRITE_PROBE_INTERVAL_MS after each check has ended, until stop(). */
  start (): void {
    const checkThenWait = async (): Promise<string | undefined> => {
      const reason = await this.check()
      if (!this.stopped) this.timer = setTimeout(() => { void checkThenWait() }, WRITE_PROBE_INTERVAL_MS)
      return reason
    }
    this.firstCheck = checkThenWait()
  }

  stop (): void {
    this.stopped = true
    clearTimeout(this.timer)
  }

  /** What the latest check found (before the first has ended, what it finds): undefined while Redis accepts writes, else why not. */
  async latest (): Promise<string | undefined> {
    if (this.refusal !== null) return this.refusal
    return await (this.firstCheck ?? this.check())
  }

  /** undefined when Redis accepted the write, else the reason it did not. */
  private async check (): Promise<string | undefined> {
    let reason: string | undefined
    try {
      await this.redis.set(this.key, PROBE_VALUE, 'PX', PROBE_KEY_TTL_MS)
    } catch (error) {
      reason = writeRefusalReason(error)
    }
    if (reason !== this.refusal) {
      if (reason !== undefined) this.log.warn({ reason }, `${reason}; /health/ready answers 503`)
      else if (this.refusal !== null) this.log.info('Redis accepts writes again; /health/ready answers 200')
      this.refusal = reason
    }
    return reason
  }
}
