import { withCompareAndSet } from './compare-and-set.ts'
import { waitForReplicas, waitForReplicasOfAll, type RedisConnection } from './connection.ts'
import type { RedisKeys } from './keys.ts'
import { ClientExistsError, type Client } from '../../clients/client.ts'
import { randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { ClientRecordCache, type ClientPage, type ClientRepository, type ClientWrites } from '../../clients/repository.ts'

// KEYS: lease. ARGV: holder. Releases the lease only if this holder still has it.
const RELEASE_SCRIPT = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('DEL', KEYS[1])`

type RedisWithLease = RedisConnection & {
  releaseLease (key: string, holder: string): Promise<number>
}

/** Longer than a reconcile of 10,000 clients takes, so a holder that died frees it soon enough. */
const LEASE_MS = 60_000
const LEASE_RETRY_MS = 50
/**
 * Commands in flight at once in a batch: ioredis writes them back to back, without a round trip
 * each, and no command waits behind thousands of others past the connection's commandTimeout.
 */
const BATCH = 500

async function inBatches<T, R> (items: readonly T[], each: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = []
  for (let start = 0; start < items.length; start += BATCH) results.push(...await Promise.all(items.slice(start, start + BATCH).map(each)))
  return results
}

/**
 * Clients in Redis, shared by every replica: one JSON string per client (RedisKeys.client) and the
 * ids for list() and page() (RedisKeys.clientIds), a sorted set whose members are ordered by id
 * (every score 0), so a page starts after the last id of the one before however clients come and
 * go, where SCAN has no order to resume from. The index is a separate key (another Cluster slot, so
 * no script can write it with the record): it is written before a record is created and after one
 * is removed, so an id whose record is gone is skipped, and a record is never unlisted.
 */
export class RedisClientRepository implements ClientRepository {
  readonly #redis: RedisWithLease
  readonly #keys: RedisKeys
  readonly #records = new ClientRecordCache()
  readonly #compareAndSet: ReturnType<typeof withCompareAndSet>
  /** The move of an earlier version's plain set of ids into the sorted index, once per process. */
  #indexMoved: Promise<void> | undefined

  constructor (redis: RedisConnection, keys: RedisKeys) {
    redis.defineCommand('releaseLease', { numberOfKeys: 1, lua: RELEASE_SCRIPT })
    this.#redis = redis as RedisWithLease
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

  /**
   * The sorted index, with the ids of the plain set an earlier version kept moved into it (ZADD is
   * idempotent, so replicas moving at once agree). Every use of the index waits for it.
   */
  async #index (): Promise<string> {
    this.#indexMoved ??= (async () => {
      const { clientIds, clientIdsBefore } = this.#keys
      const ids = await this.#redis.smembers(clientIdsBefore)
      for (let start = 0; start < ids.length; start += BATCH * 10) {
        await this.#redis.zadd(clientIds, ...ids.slice(start, start + BATCH * 10).flatMap((id) => [0, id]))
      }
      if (ids.length > 0) await this.#redis.del(clientIdsBefore)
    })().catch((error: unknown) => {
      this.#indexMoved = undefined
      throw error
    })
    await this.#indexMoved
    return this.#keys.clientIds
  }

  async create (client: Client): Promise<void> {
    await this.#redis.zadd(await this.#index(), 0, client.clientId)
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
    await this.#redis.zrem(await this.#index(), clientId)
    if (removed > 0) await waitForReplicas(this.#redis, key)
    return removed > 0
  }

  async list (): Promise<Client[]> {
    return await this.#recordsOf(await this.#redis.zrange(await this.#index(), 0, -1))
  }

  async page (cursor: string | undefined, limit: number): Promise<ClientPage> {
    const ids = await this.#redis.zrangebylex(await this.#index(), cursor === undefined ? '-' : `(${cursor}`, '+', 'LIMIT', 0, limit)
    const clients = await this.#recordsOf(ids)
    return ids.length === limit ? { clients, next: ids[ids.length - 1] } : { clients }
  }

  /** The records of these ids, in their order; an id whose record is gone (removed meanwhile) is left out. */
  async #recordsOf (ids: string[]): Promise<Client[]> {
    // One GET per client rather than a pipeline: in a Cluster the records live in different slots.
    const texts = await inBatches(ids, async (id) => await this.#redis.get(this.#keys.client(id).record))
    return texts.filter((text) => text !== null).map((text) => JSON.parse(text) as Client)
  }

  /**
   * Under a lease (a key set NX with an expiry), so one replica reconciles at a time and the next
   * plans against its result; the writes go out in batches, ids before records as in create().
   */
  async reconcile<T extends { writes: ClientWrites }> (plan: (stored: Client[]) => T): Promise<T> {
    const lease = this.#keys.clientsReconcileLease
    const holder = randomUUID()
    while (await this.#redis.set(lease, holder, 'PX', LEASE_MS, 'NX') === null) await sleep(LEASE_RETRY_MS)
    try {
      const planned = plan(await this.list())
      const { put, remove } = planned.writes
      const index = await this.#index()
      const ids = put.map((client) => client.clientId)
      for (let start = 0; start < ids.length; start += BATCH * 10) await this.#redis.zadd(index, ...ids.slice(start, start + BATCH * 10).flatMap((id) => [0, id]))
      await inBatches(put, async (client) => await this.#redis.set(this.#keys.client(client.clientId).record, JSON.stringify(client)))
      await inBatches(remove, async (clientId) => await this.#redis.del(this.#keys.client(clientId).record))
      for (let start = 0; start < remove.length; start += BATCH * 10) await this.#redis.zrem(index, ...remove.slice(start, start + BATCH * 10))
      await waitForReplicasOfAll(this.#redis)
      return planned
    } finally {
      await this.#redis.releaseLease(lease, holder)
    }
  }
}
