import { withCompareAndSet } from './compare-and-set.ts'
import { waitForReplicas, type RedisConnection } from './connection.ts'
import type { RedisKeys } from './keys.ts'
import type { SigningKeyStore, StoredSigningKey } from '../../tokens/key-lifecycle.ts'

/**
 * The managed signing keys in Redis, shared by every replica: one JSON string (RedisKeys.signingKeys)
 * holding every key, so each change is one compare-and-set of the whole set. Acknowledged only
 * once a replica has it: a failover must not bring back a revoked key or lose the signing one.
 */
export class RedisSigningKeyStore implements SigningKeyStore {
  readonly #redis: RedisConnection
  readonly #key: string
  readonly #compareAndSet: ReturnType<typeof withCompareAndSet>

  constructor (redis: RedisConnection, keys: RedisKeys) {
    this.#redis = redis
    this.#key = keys.signingKeys
    this.#compareAndSet = withCompareAndSet(redis)
  }

  async list (): Promise<StoredSigningKey[]> {
    return parse(await this.#redis.get(this.#key) ?? '')
  }

  async update (change: (keys: StoredSigningKey[]) => StoredSigningKey[] | undefined): Promise<StoredSigningKey[]> {
    while (true) {
      const text = await this.#redis.get(this.#key) ?? ''
      const changed = change(parse(text))
      if (changed === undefined) return parse(text)
      if (await this.#compareAndSet(this.#key, text, JSON.stringify({ keys: changed }))) {
        await waitForReplicas(this.#redis, this.#key)
        return changed
      }
    }
  }
}

function parse (text: string): StoredSigningKey[] {
  return text === '' ? [] : (JSON.parse(text) as { keys: StoredSigningKey[] }).keys
}
