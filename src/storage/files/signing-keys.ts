import { JsonRecordFile } from './json-record-file.ts'
import type { SigningKeyStore, StoredSigningKey } from '../../tokens/key-lifecycle.ts'

/**
 * The managed signing keys in `<dataDir>/signing-keys.json`, for the embedded single-instance mode:
 * the keys CLI may revoke one while the server runs (see JsonRecordFile), which the server reads
 * within a second. Private keys are sealed under the KEK, as in Redis.
 */
export class FileSigningKeyStore implements SigningKeyStore {
  readonly #file: JsonRecordFile<StoredSigningKey>

  constructor (dataDir: string) {
    this.#file = new JsonRecordFile(dataDir, 'signing-keys.json', {
      property: 'keys',
      keyOf: (key) => key.kid,
      isRecord: (value): value is StoredSigningKey => typeof (value as Partial<StoredSigningKey> | null)?.kid === 'string' && typeof (value as Partial<StoredSigningKey>).sealedPrivateKey === 'string',
      requiredFields: 'a kid and a sealedPrivateKey each'
    })
  }

  /** Fresh, not from the cache: the managed keys reread the store once a second, which is the bound a revoke is seen within. */
  async list (): Promise<StoredSigningKey[]> {
    return [...(await this.#file.read({ fresh: true })).values()]
  }

  async update (change: (keys: StoredSigningKey[]) => StoredSigningKey[] | undefined): Promise<StoredSigningKey[]> {
    let after: StoredSigningKey[] | undefined
    await this.#file.update((records) => {
      const changed = change([...records.values()])
      after = changed ?? [...records.values()]
      if (changed === undefined) return false
      records.clear()
      for (const key of changed) records.set(key.kid, key)
      return true
    })
    return after as StoredSigningKey[]
  }
}
