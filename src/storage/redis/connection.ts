import type { ConnectionOptions } from 'node:tls'
import { Cluster, Redis, type RedisOptions } from 'ioredis'
import { listSetting, readSettingFile, type Config } from '../../config.ts'

/** Redis as the rest of the service sees it: one server, a Sentinel-managed primary or a Cluster. */
export type RedisConnection = Redis | Cluster

/** The settings that say where Redis is and how to log in. */
export type RedisSettings = Pick<Config, 'REDIS_URL' | 'REDIS_TLS_CA_FILE' | 'REDIS_TLS_CERT_FILE' | 'REDIS_TLS_KEY_FILE' |
'REDIS_USERNAME' | 'REDIS_PASSWORD_FILE' | 'REDIS_SENTINELS' | 'REDIS_SENTINEL_MASTER' | 'REDIS_SENTINEL_USERNAME' |
'REDIS_SENTINEL_PASSWORD_FILE' | 'REDIS_CLUSTER_NODES'>

/** How the service reaches Redis, or undefined in embedded mode. Exactly one topology may be configured. */
export type RedisTopology = 'standalone' | 'sentinel' | 'cluster'

/** The topology the settings choose: REDIS_URL, REDIS_SENTINELS or REDIS_CLUSTER_NODES; none is embedded mode. */
export function redisTopology (config: Pick<Config, 'REDIS_URL' | 'REDIS_SENTINELS' | 'REDIS_CLUSTER_NODES'>): RedisTopology | undefined {
  if (config.REDIS_URL !== undefined) return 'standalone'
  if (listSetting(config.REDIS_SENTINELS).length > 0) return 'sentinel'
  if (listSetting(config.REDIS_CLUSTER_NODES).length > 0) return 'cluster'
  return undefined
}

/** The longest a command waits for its reply before it fails. */
export const COMMAND_TIMEOUT_MS = 800

/**
 * Fail fast: with Redis unreachable a command errors at once instead of waiting in the offline
 * queue or a retry loop, while the connection keeps reconnecting in the background so the service
 * recovers by itself.
 */
const FAIL_FAST: RedisOptions = {
  enableOfflineQueue: false,
  maxRetriesPerRequest: 0,
  connectTimeout: 1000,
  commandTimeout: COMMAND_TIMEOUT_MS,
  retryStrategy: (attempt) => Math.min(attempt * 100, 1000),
  // A primary demoted by a failover answers writes with READONLY: reconnecting finds the new one
  // (Sentinel asks the sentinels again; one address behind a managed failover resolves anew).
  reconnectOnError: (error) => error.message.startsWith('READONLY'),
  lazyConnect: true,
  // Commands issued while a round trip is under way go out together in the next one: under load,
  // one write and one read carry many requests' commands instead of one each.
  enableAutoPipelining: true
}

/** How long start-up waits to learn whether Redis accepts the credentials. */
const FIRST_CONNECTION_WAIT_MS = 5000

/** How long a write that must not be lost waits for a replica to acknowledge it; below commandTimeout. */
const REPLICA_ACK_TIMEOUT_MS = 500

/** A secret file's content without the final newline editors and `echo` add. */
async function readSecretFile (variable: string, file: string): Promise<string> {
  const secret = (await readSettingFile(variable, file)).replace(/\r?\n$/, '')
  if (secret === '') throw new Error(`${variable} names an empty file (${file})`)
  return secret
}

async function tlsOptions (settings: RedisSettings): Promise<ConnectionOptions> {
  const { REDIS_TLS_CA_FILE: ca, REDIS_TLS_CERT_FILE: cert, REDIS_TLS_KEY_FILE: key } = settings
  return {
    ...(ca !== undefined ? { ca: await readSettingFile('REDIS_TLS_CA_FILE', ca) } : {}),
    ...(cert !== undefined ? { cert: await readSettingFile('REDIS_TLS_CERT_FILE', cert) } : {}),
    ...(key !== undefined ? { key: await readSettingFile('REDIS_TLS_KEY_FILE', key) } : {})
  }
}

function hostPorts (setting: string): Array<{ host: string, port: number }> {
  return listSetting(setting).map((entry) => {
    const separator = entry.lastIndexOf(':')
    return { host: entry.slice(0, separator).replace(/^\[(.*)\]$/, '$1'), port: Number(entry.slice(separator + 1)) }
  })
}

/**
 * The one place that knows the topology: a connection to one server (REDIS_URL), the primary that
 * the sentinels name (REDIS_SENTINELS), or a Cluster (REDIS_CLUSTER_NODES), with TLS and ACL
 * credentials as configured. Reads the secret files, so a missing one fails here naming its
 * setting. It is not connected yet. A string is a REDIS_URL alone.
 */
export async function createRedisConnection (setup: RedisSettings | string): Promise<RedisConnection> {
  const settings = typeof setup === 'string' ? settingsOfUrl(setup) : setup
  const topology = redisTopology(settings)
  const credentials: RedisOptions = {
    ...(settings.REDIS_USERNAME !== undefined ? { username: settings.REDIS_USERNAME } : {}),
    ...(settings.REDIS_PASSWORD_FILE !== undefined ? { password: await readSecretFile('REDIS_PASSWORD_FILE', settings.REDIS_PASSWORD_FILE) } : {})
  }
  if (topology === 'standalone') {
    const url = settings.REDIS_URL as string
    const tls = url.startsWith('rediss:') ? { tls: await tlsOptions(settings) } : {}
    return new Redis(url, { ...FAIL_FAST, ...credentials, ...tls })
  }
  // Without a URL scheme, the CA file is what asks for TLS (config.ts checks the rest).
  const tls = settings.REDIS_TLS_CA_FILE !== undefined ? { tls: await tlsOptions(settings) } : {}
  if (topology === 'sentinel') {
    return new Redis({
      ...FAIL_FAST,
      ...credentials,
      ...tls,
      sentinels: hostPorts(settings.REDIS_SENTINELS),
      name: settings.REDIS_SENTINEL_MASTER as string,
      ...(settings.REDIS_SENTINEL_USERNAME !== undefined ? { sentinelUsername: settings.REDIS_SENTINEL_USERNAME } : {}),
      ...(settings.REDIS_SENTINEL_PASSWORD_FILE !== undefined ? { sentinelPassword: await readSecretFile('REDIS_SENTINEL_PASSWORD_FILE', settings.REDIS_SENTINEL_PASSWORD_FILE) } : {}),
      ...(tls.tls !== undefined ? { enableTLSForSentinelMode: true, sentinelTLS: tls.tls } : {}),
      // Not ioredis' failoverDetector: a +switch-master arriving while the connection is reconnecting
      // (the usual case when the primary died) ends it for good. Without it, the connection
      // reconnects until the sentinels name the new primary, and READONLY (above) covers a
      // primary that was demoted while still reachable.
      failoverDetector: false,
      sentinelRetryStrategy: (attempt) => Math.min(attempt * 100, 1000)
    })
  }
  if (topology === 'cluster') {
    const { lazyConnect, enableAutoPipelining, ...nodeOptions } = FAIL_FAST
    return new Cluster(hostPorts(settings.REDIS_CLUSTER_NODES), {
      lazyConnect,
      enableAutoPipelining,
      enableOfflineQueue: false,
      // Every command to the primary of its slot: limit decisions must never read a stale replica.
      scaleReads: 'master',
      redisOptions: { ...nodeOptions, ...credentials, ...tls },
      clusterRetryStrategy: (attempt) => Math.min(attempt * 100, 1000),
      // A failover or a slot move answers CLUSTERDOWN / TRYAGAIN / a closed connection for a
      // moment: each retry waits 100 ms, at most maxRedirections (16) times, so a command ends
      // in under about 2 s rather than hanging.
      retryDelayOnFailover: 100,
      retryDelayOnClusterDown: 100,
      retryDelayOnTryAgain: 100,
      slotsRefreshTimeout: 1000
    })
  }
  throw new Error('No Redis topology configured: set REDIS_URL, REDIS_SENTINELS or REDIS_CLUSTER_NODES')
}

/** A plain REDIS_URL, as tests and scripts give it. */
function settingsOfUrl (url: string): RedisSettings {
  return { REDIS_URL: url, REDIS_SENTINELS: '', REDIS_CLUSTER_NODES: '' }
}

/** The setting an authentication failure points at, for an error an operator can act on. */
function credentialSetting (settings: RedisSettings, message: string): string {
  if (/sentinel/i.test(message)) return 'REDIS_SENTINEL_PASSWORD_FILE (and REDIS_SENTINEL_USERNAME)'
  if (settings.REDIS_PASSWORD_FILE !== undefined) return 'REDIS_PASSWORD_FILE (and REDIS_USERNAME)'
  if (settings.REDIS_URL !== undefined && new URL(settings.REDIS_URL).password !== '') return 'the password in REDIS_URL'
  return 'REDIS_PASSWORD_FILE: Redis requires a password'
}

/** Redis answered that the credentials are wrong, missing or not allowed: retrying will not help. */
export function isRedisAuthError (error: unknown): boolean {
  return error instanceof Error && /WRONGPASS|NOAUTH|NOPERM|invalid password|Authentication required/i.test(error.message)
}

/** The error for credentials Redis refused: names the setting, never the password. */
export function redisAuthError (settings: RedisSettings, error: Error): Error {
  return new Error(`Redis refused the credentials: check ${credentialSetting(settings, error.message)} (${error.message})`)
}

/**
 * Connects, and settles at the first outcome: undefined once ready, or the first error (the connection
 * keeps retrying in the background). Neither within FIRST_CONNECTION_WAIT_MS (a silent network)
 * counts as an error too.
 */
async function firstConnectionOutcome (redis: RedisConnection): Promise<Error | undefined> {
  return await new Promise((resolve) => {
    const timer = setTimeout(() => { settle(new Error(`no answer within ${FIRST_CONNECTION_WAIT_MS} ms`)) }, FIRST_CONNECTION_WAIT_MS)
    function settle (error?: Error): void {
      clearTimeout(timer)
      redis.off('ready', settle)
      redis.off('error', settle)
      redis.off('node error', settle)
      resolve(error)
    }
    redis.on('ready', settle)
    redis.on('error', settle)
    // A Cluster reports a node's errors (refused credentials among them) separately.
    redis.on('node error', settle)
    redis.connect().catch(() => { /* reported through the error event */ })
  })
}

/**
 * Start-up: resolves once the connection is ready or Redis is found unreachable (the service then
 * runs, answers 503, and the connection keeps retrying). Credentials Redis refuses reject, so a wrong
 * or missing password stops the start instead of a service that can never serve.
 */
export async function firstConnection (redis: RedisConnection, settings: RedisSettings): Promise<void> {
  const error = await firstConnectionOutcome(redis)
  if (error !== undefined && isRedisAuthError(error)) throw redisAuthError(settings, error)
}

/**
 * For a command-line process: connects and waits until the connection is ready, or fails with the
 * reason, leaving no connection reconnecting in the background that would keep the process alive.
 */
export async function openRedisConnection (setup: RedisSettings | string): Promise<RedisConnection> {
  const settings = typeof setup === 'string' ? settingsOfUrl(setup) : setup
  const redis = await createRedisConnection(settings)
  const error = await firstConnectionOutcome(redis)
  if (error === undefined) return redis
  redis.disconnect()
  if (isRedisAuthError(error)) throw redisAuthError(settings, error)
  throw new Error(`Cannot connect to Redis: ${error.message}`)
}

/**
 * Every key matching a SCAN pattern, from every primary: a Cluster spreads keys over its nodes.
 * For listings an operator asks for, not for anything a login does.
 */
export async function scanKeys (redis: RedisConnection, pattern: string): Promise<string[]> {
  const primaries = redis instanceof Cluster ? redis.nodes('master') : [redis]
  const keys = new Set<string>()
  for (const primary of primaries) {
    let cursor = '0'
    do {
      const [next, batch] = await primary.scan(cursor, 'MATCH', pattern, 'COUNT', 1000)
      for (const key of batch) keys.add(key)
      cursor = next
    } while (cursor !== '0')
  }
  return [...keys]
}

/** A SCAN pattern that matches `text` literally. */
export function scanPatternLiteral (text: string): string {
  return text.replace(/[*?[\]\\]/g, '\\$&')
}

/**
 * Closes the connection for good: QUIT lets pending replies arrive, then disconnect() ends whatever
 * QUIT leaves running (a reconnection in progress, a Sentinel connector's own connections), which
 * would otherwise keep the process alive.
 */
export async function closeRedisConnection (redis: RedisConnection): Promise<void> {
  await redis.quit().catch(() => { /* already closed or unreachable: disconnect() below ends it */ })
  redis.disconnect()
}

/** A write that must not be lost was not acknowledged by a replica in time. */
export class ReplicaAckTimeoutError extends Error {
  constructor () {
    super(`No Redis replica acknowledged the write within ${REPLICA_ACK_TIMEOUT_MS} ms`)
    this.name = 'ReplicaAckTimeoutError'
  }
}

/**
 * Call after a write that must survive a failover (users, clients, revocations, disabled
 * accounts), with a key the write touched. When the primary holding that key has replicas, waits
 * (WAIT) until at least one has the write, or throws ReplicaAckTimeoutError, which the service
 * answers with 503. Without replicas there is nobody to wait for, and it returns.
 */
export async function waitForReplicas (redis: RedisConnection, key: string): Promise<void> {
  // WAIT and INFO name no key: pipelined behind a command on `key`, a Cluster sends them to the
  // node that holds it, and WAIT covers the earlier writes on that same connection.
  const [, [infoError, info]] = await pipelineReplies(redis.pipeline().exists(key).info('replication'))
  if (infoError !== null) throw infoError
  const replicas = Number(/^connected_slaves:(\d+)/m.exec(info as string)?.[1] ?? 0)
  if (replicas === 0) return
  const [, [waitError, acknowledged]] = await pipelineReplies(redis.pipeline().exists(key).wait(1, REPLICA_ACK_TIMEOUT_MS))
  if (waitError !== null) throw waitError
  if ((acknowledged as number) < 1) throw new ReplicaAckTimeoutError()
}

/**
 * waitForReplicas after a batch of writes over many keys: WAIT covers the earlier writes on its
 * connection, so one per primary the writes went through (each node's connection in a Cluster).
 */
export async function waitForReplicasOfAll (redis: RedisConnection): Promise<void> {
  const primaries: Redis[] = redis instanceof Cluster ? redis.nodes('master') : [redis]
  await Promise.all(primaries.map(async (primary) => {
    const replicas = Number(/^connected_slaves:(\d+)/m.exec(await primary.info('replication'))?.[1] ?? 0)
    if (replicas > 0 && await primary.wait(1, REPLICA_ACK_TIMEOUT_MS) < 1) throw new ReplicaAckTimeoutError()
  }))
}

async function pipelineReplies (pipeline: ReturnType<RedisConnection['pipeline']>): Promise<Array<[Error | null, unknown]>> {
  return (await pipeline.exec()) ?? []
}
