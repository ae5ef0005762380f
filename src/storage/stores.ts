import type { FastifyRateLimitStoreCtor } from '@fastify/rate-limit'
import type { FastifyBaseLogger } from 'fastify'
import path from 'node:path'
import type { Config } from '../config.ts'
import type { ClientRepository } from '../clients/repository.ts'
import type { ThrottleStore } from '../limits/account-throttle.ts'
import type { TokenEndpointStore } from '../oauth/token-endpoint-store.ts'
import type { SigningKeyStore } from '../tokens/key-lifecycle.ts'
import { EMBEDDED_KEY_FILE_NAME, type GeneratedKeyPlace } from '../tokens/keys.ts'
import type { RevocationList } from '../tokens/revocations.ts'
import type { UserRepository } from '../users/repository.ts'
import { loggableError } from '../observability/log-fields.ts'
import { FileClientRepository } from './files/clients.ts'
import { lockDataDir, prepareDataDir } from './files/data-dir.ts'
import { FileSigningKeyStore } from './files/signing-keys.ts'
import { FileUserRepository } from './files/users.ts'
import { LocalThrottleStore } from './memory/account-throttle.ts'
import { LocalRevocationList } from './memory/revocations.ts'
import { LocalRollingWindowStore } from './memory/rolling-window.ts'
import { LocalTokenEndpointStore } from './memory/token-endpoint.ts'
import { RedisThrottleStore } from './redis/account-throttle.ts'
import { RedisClientRepository } from './redis/clients.ts'
import {
  closeRedisConnection, createRedisConnection, firstConnection, openRedisConnection, redisTopology,
  type RedisConnection, type RedisSettings
} from './redis/connection.ts'
import { redisKeys, type RedisKeys } from './redis/keys.ts'
import { watchRedisPersistence } from './redis/persistence.ts'
import { RedisRevocationList } from './redis/revocations.ts'
import { RedisRollingWindowStore } from './redis/rolling-window.ts'
import { RedisSigningKeyStore } from './redis/signing-keys.ts'
import { RedisTokenEndpointStore } from './redis/token-endpoint.ts'
import { RedisUserRepository } from './redis/users.ts'
import { RedisWriteProbe } from './redis/write-probe.ts'

/** The settings that choose where the stores live and how they are named. */
export type StoreSettings = RedisSettings & Pick<Config, 'REDIS_KEY_PREFIX' | 'DATA_DIR'>

/**
 * State that must survive. In Redis a write is answered only once a replica has it (waitForReplicas);
 * in embedded mode users, clients and managed signing keys are files in DATA_DIR, replaced
 * atomically, and revocations are kept in process (the one embedded instance forgets them when it
 * stops, as the README says).
 */
export interface DurableStores {
  users: UserRepository
  clients: ClientRepository
  revocations: RevocationList
  /** The managed signing keys (JWT_KEY_ROTATION_SECONDS), their private keys sealed under the KEK. */
  signingKeys: SigningKeyStore
}

/**
 * State that only shapes answers for a while: every entry expires by itself, nothing waits for a
 * replica to have it, and losing it only forgets limits, throttles and used assertions.
 */
export interface TransientStores {
  /** The per-IP limit's rolling windows, as the store class @fastify/rate-limit constructs itself. */
  rateLimit: FastifyRateLimitStoreCtor
  accountThrottle: ThrottleStore
  /** The token endpoint's failure and grant windows, and its replay cache of client assertions. */
  tokenEndpoint: TokenEndpointStore
}

/** Every store the service uses. */
export interface Stores {
  durable: DurableStores
  transient: TransientStores
}

/**
 * The one place that picks where stored state lives: Redis when a Redis topology is configured
 * (`redis` is its connection, which the caller owns), otherwise DATA_DIR and this process. The
 * server and the CLIs open their stores through it.
 */
export function openStores (settings: StoreSettings, redis?: RedisConnection): Stores {
  if (redisTopology(settings) === undefined) {
    const clients = new FileClientRepository(settings.DATA_DIR)
    return {
      durable: { users: new FileUserRepository(settings.DATA_DIR), clients, revocations: new LocalRevocationList(), signingKeys: new FileSigningKeyStore(settings.DATA_DIR) },
      transient: { rateLimit: LocalRollingWindowStore, accountThrottle: new LocalThrottleStore(), tokenEndpoint: new LocalTokenEndpointStore(clients) }
    }
  }
  if (redis === undefined) throw new Error('Redis is configured, so a Redis connection is needed to open the stores')
  const keys = redisKeys(settings.REDIS_KEY_PREFIX)
  const clients = new RedisClientRepository(redis, keys)
  return {
    durable: { users: new RedisUserRepository(redis, keys), clients, revocations: new RedisRevocationList(redis, keys), signingKeys: new RedisSigningKeyStore(redis, keys) },
    transient: {
      rateLimit: rateLimitStoreOn(redis, keys),
      accountThrottle: new RedisThrottleStore(redis, keys),
      tokenEndpoint: new RedisTokenEndpointStore(redis, keys, clients)
    }
  }
}

/** @fastify/rate-limit constructs the store itself, passing only its own options, so the connection is bound beforehand. */
function rateLimitStoreOn (redis: RedisConnection, keys: RedisKeys): FastifyRateLimitStoreCtor {
  return class extends RedisRollingWindowStore {
    constructor () {
      super(redis, keys.rateLimit)
    }
  }
}

/** Readiness as logins need it: whether the stores accept a write. */
export interface WriteProbe {
  /** undefined while writes are accepted, else the reason they are not (logged once per change), as last checked. */
  latest (): Promise<string | undefined>
}

/** Stored state as a running server holds it. */
export interface ServerStorage {
  stores: Stores
  writeProbe: WriteProbe
  /** The connection the stores share in Redis mode, undefined in embedded mode. The service's own code never needs it. */
  redis: RedisConnection | undefined
  close (): Promise<void>
}

/**
 * Opens the stores for the server. In Redis mode start-up does not wait for Redis to be up: while
 * it is unreachable the service runs, answers 503 to logins and reports not ready, and the
 * connection keeps reconnecting in the background. Credentials Redis refuses stop the start.
 * `onRedisError` is told of every connection error, to count it.
 */
export async function openServerStorage (config: StoreSettings, log: FastifyBaseLogger, onRedisError: () => void): Promise<ServerStorage> {
  if (redisTopology(config) === undefined) {
    // Files in DATA_DIR and this process's memory: writable while the process runs.
    return { stores: openStores(config), writeProbe: { latest: async () => undefined }, redis: undefined, close: async () => {} }
  }
  const redis = await createRedisConnection(config)
  // The connection emits an error on every reconnect attempt: log the outage once, and the recovery.
  // Only the message: ioredis errors carry the failed command's arguments (AUTH's are the password).
  let reachable = true
  const onError = (error: Error): void => {
    onRedisError()
    if (reachable) log.error({ err: loggableError(error) }, 'Redis is unreachable; logins answer 503 until it is back')
    reachable = false
  }
  redis.on('error', onError)
  // A Cluster reports each node's connection errors separately.
  redis.on('node error', onError)
  redis.on('ready', () => {
    if (!reachable) log.info('Redis is reachable again')
    reachable = true
  })
  watchRedisPersistence(redis, log)
  try {
    await firstConnection(redis, config)
  } catch (error) {
    redis.disconnect()
    throw error
  }
  const writeProbe = new RedisWriteProbe(redis, redisKeys(config.REDIS_KEY_PREFIX).writeProbe, log)
  writeProbe.start()
  return {
    stores: openStores(config, redis),
    writeProbe,
    redis,
    close: async () => {
      writeProbe.stop()
      await closeRedisConnection(redis)
    }
  }
}

/**
 * For a command-line process: runs `command` on the stores, with Redis connected first (or the
 * reason it cannot be), and closes the connection once the command ends, however it ends.
 */
export async function withStores<T> (settings: StoreSettings, command: (stores: Stores) => Promise<T>): Promise<T> {
  const redis = redisTopology(settings) !== undefined ? await openRedisConnection(settings) : undefined
  try {
    return await command(openStores(settings, redis))
  } finally {
    if (redis !== undefined) await closeRedisConnection(redis)
  }
}

/** What a server holds of its stores that no other server may; released at shutdown. */
export interface StorageLock {
  release (): Promise<void>
}

/**
 * Makes this process the only server on its stores where that matters: an embedded instance
 * takes DATA_DIR, since two on one directory would share the users file but not their limits.
 * Redis mode takes nothing: every replica shares everything through Redis.
 */
export async function lockStorage (settings: StoreSettings): Promise<StorageLock> {
  if (redisTopology(settings) !== undefined) return { release: async () => {} }
  return await lockDataDir(settings.DATA_DIR)
}

/** The start-up line that says where state lives and what that allows. */
export function describeStorage (settings: StoreSettings): string {
  const topology = redisTopology(settings)
  return topology !== undefined
    ? `Redis mode (${topology}): users, rate limits, throttling, revocations and managed signing keys are shared by every replica through Redis`
    : `Embedded mode: single instance, users kept in ${settings.DATA_DIR}; set REDIS_URL (or REDIS_SENTINELS, REDIS_CLUSTER_NODES) to run several replicas`
}

/**
 * Where a signing key generated on first start is kept, so tokens survive a restart: DATA_DIR
 * (created if need be), for the one embedded instance. Redis mode generates none, because
 * replicas that each made their own key would reject each other's tokens.
 */
export function generatedKeyPlace (settings: StoreSettings): GeneratedKeyPlace {
  const embedded = redisTopology(settings) === undefined
  const file = path.join(settings.DATA_DIR, EMBEDDED_KEY_FILE_NAME)
  return {
    prepare: async () => {
      if (!embedded) {
        throw new Error('JWT_PRIVATE_KEY_FILE is required in Redis mode (REDIS_URL, REDIS_SENTINELS or REDIS_CLUSTER_NODES set): all replicas must sign with one shared key (create one with `node dist/cli/keys.js generate <file>`), or set JWT_KEY_ROTATION_SECONDS for keys the service manages')
      }
      await prepareDataDir(settings.DATA_DIR)
      return file
    },
    file: embedded ? file : undefined
  }
}
