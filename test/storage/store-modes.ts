import tap, { type Test } from 'tap'
import { loadConfig } from '../../src/config.ts'
import { closeRedisConnection, openRedisConnection, type RedisConnection } from '../../src/storage/redis/connection.ts'
import { openStores, type Stores } from '../../src/storage/stores.ts'
import { tempDir } from '../helper.ts'
import { redisModeOn, selectedTopologies, type TopologyName } from '../redis-topologies.ts'

/** Stores with nothing in them yet, opened as the service opens them, and what they live on. */
export interface EmptyStores {
  stores: Stores
  /** The connection under them in Redis mode, for a test's look at the keys; undefined embedded. */
  redis: RedisConnection | undefined
  /** The key prefix of these stores alone (REDIS_KEY_PREFIX). */
  keyPrefix: string
}

/** One connection per topology and test file: the stores of each test differ by their key prefix. */
const connections = new Map<TopologyName, Promise<RedisConnection>>()

function connectionTo (name: TopologyName, env: Record<string, string>): Promise<RedisConnection> {
  let connection = connections.get(name)
  if (connection === undefined) {
    connection = openRedisConnection(loadConfig(env))
    connections.set(name, connection)
    tap.teardown(async () => { await closeRedisConnection(await connection!) })
  }
  return connection
}

/**
 * Every mode a store contract runs on: embedded (DATA_DIR and this process), then each Redis
 * topology (standalone, Cluster, Sentinel; REDIS_TOPOLOGIES picks some). Each call gives empty
 * stores, with a DATA_DIR and a key prefix of their own:
 * `for (const [mode, emptyStores] of Object.entries(STORE_MODES)) t.test(mode, ...)`.
 */
export const STORE_MODES: Record<string, (t: Test) => Promise<EmptyStores>> = {
  embedded: async (t) => {
    const config = loadConfig({ DATA_DIR: await tempDir(t) })
    return { stores: openStores(config), redis: undefined, keyPrefix: config.REDIS_KEY_PREFIX }
  },
  ...Object.fromEntries(selectedTopologies().map((name) => [`redis ${name}`, async (t: Test): Promise<EmptyStores> => {
    const { env } = await redisModeOn(name)
    const config = loadConfig({ DATA_DIR: await tempDir(t), ...env })
    const redis = await connectionTo(name, env)
    return { stores: openStores(config, redis), redis, keyPrefix: config.REDIS_KEY_PREFIX }
  }]))
}
