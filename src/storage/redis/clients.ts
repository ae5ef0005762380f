import { withCompareAndSet } from './compare-and-set.js'
import { waitForReplicas, type RedisConnection } from './connection.js'
import type { RedisKeys } from './keys.js'
import { ClientExistsError, type Client } from '../../clients/client.js'
import { ClientRecordCache, type ClientRepository } from '../../clients/repository.js'

/**
 * Clients in Redis, shared by every replica: one JSON string per client (RedisKeys.client) and the
 * set of ids for list() (RedisKeys.clientIds). The set is a separate key (another Cluster slot), so it
 * is written before a record is created and after one is removed: an id in the set whose record is
 * gone is skipped by list(), and a record is never unlisted.
 */
export class RedisClientRepository implements ClientRepository {
  readonly #redis: RedisConnection
  readonly #keys: RedisKeys
  readonly #records = new ClientRecordCache()
  readonly #compareAndSet: ReturnType<typeof withCompareAndSet>

  constructor (redis: RedisConnection, keys: RedisKeys) {
    this.#redis = redis
    this.#keys = keys
    this.#compareAndSet = withCompareAndSet(redis)
  }

  /** The client a record read from Redis holds (cached per text), or undefined for no record. */
  parse (clientId: string, text: string | null): Client | undefined {
    if (text === null) {
      this.#records.forget(clientId)
      return undefined
    }
    return this.#records.parse(clientId, text)
  }

  async find (clientId: string): Promise<Client | undefined> {
    return this.parse(clientId, await this.#redis.get(this.#keys.client(clientId).record))
  }

  async create (client: Client): Promise<void> {
    await this.#redis.sadd(this.#keys.clientIds, client.clientId)
    const key = this.#keys.client(client.clientId).record
    const created = await this.#redis.set(key, JSON.stringify(client), 'NX')
    if (created === null) throw new ClientExistsError(client.clientId)
    await waitForReplicas(this.#redis, key)
  }

  async update (clientId: string, change: (client: Client) => Client): Promise<Client | undefined> {
    const key = this.#keys.client(clientId).record
    // Optimistic: a concurrent change makes the script refuse, and the change is applied again to what is stored then.
    while (true) {
      const text = await this.#redis.get(key)
      if (text === null) return undefined
      const changed = change(JSON.parse(text) as Client)
      if (await this.#compareAndSet(key, text, JSON.stringify(changed))) {
        await waitForReplicas(this.#redis, key)
        return changed
      }
    }
  }

  async remove (clientId: string): Promise<boolean> {
    const key = this.#keys.client(clientId).record
    const removed = await this.#redis.del(key)
    await this.#redis.srem(this.#keys.clientIds, clientId)
    if (removed > 0) await waitForReplicas(this.#redis, key)
    return removed > 0
  }

  async list (): Promise<Client[]> {
    const ids = (await this.#redis.smembers(this.#keys.clientIds)).sort()
    // One GET per client rather than a pipeline: in a Cluster the records live in different slots.
    const texts = await Promise.all(ids.map(async (id) => await this.#redis.get(this.#keys.client(id).record)))
    return texts.filter((text) => text !== null).map((text) => JSON.parse(text) as Client)
  }
}
