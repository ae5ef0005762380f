import { JsonRecordFile } from './json-record-file.ts'
import { canonicalUsername, pageOfUsernames, UserExistsError, usernameKey, type User, type UserPage, type UserRepository } from '../../users/repository.ts'

/**
 * Users in `<dataDir>/users.json` (by usernameKey), for the embedded single-instance mode: the
 * users CLI may change the file while the server runs (see JsonRecordFile).
 */
export class FileUserRepository implements UserRepository {
  readonly #file: JsonRecordFile<User>

  constructor (dataDir: string) {
    this.#file = new JsonRecordFile(dataDir, 'users.json', {
      property: 'users',
      keyOf: (user) => usernameKey(user.username),
      isRecord: isUser,
      requiredFields: 'username, passwordHash, createdAt, updatedAt'
    })
  }

  async find (username: string): Promise<User | undefined> {
    return (await this.#file.read()).get(usernameKey(username))
  }

  async create (user: User): Promise<void> {
    const username = canonicalUsername(user.username)
    const key = usernameKey(username)
    await this.#file.update((users) => {
      if (users.has(key)) throw new UserExistsError(username)
      users.set(key, { ...user, username })
      return true
    })
  }

  replacePasswordHash (username: string, expectedHash: string, newHash: string): Promise<boolean> {
    return this.#storeHash(username, newHash, expectedHash)
  }

  setPasswordHash (username: string, newHash: string): Promise<boolean> {
    return this.#storeHash(username, newHash)
  }

  setDisabled (username: string, disabled: boolean): Promise<boolean> {
    const key = usernameKey(username)
    return this.#file.update((users) => {
      const user = users.get(key)
      if (user === undefined) return false
      const now = Date.now()
      users.set(key, { ...user, disabled, updatedAt: now, ...(disabled ? { tokensValidAfter: now } : {}) })
      return true
    })
  }

  remove (username: string): Promise<boolean> {
    const key = usernameKey(username)
    return this.#file.update((users) => users.delete(key))
  }

  async list (): Promise<string[]> {
    return [...(await this.#file.read()).values()].map((user) => user.username).sort()
  }

  async page (cursor: string | undefined, limit: number): Promise<UserPage> {
    return await pageOfUsernames(await this.list(), cursor, limit, async (username) => await this.find(username))
  }

  /**
   * Sets the hash of an existing user; with expectedHash (a rehash at login), only while the stored
   * one still equals it, else (a password change) ending earlier tokens.
   */
  #storeHash (username: string, newHash: string, expectedHash?: string): Promise<boolean> {
    const key = usernameKey(username)
    return this.#file.update((users) => {
      const user = users.get(key)
      if (user === undefined || (expectedHash !== undefined && user.passwordHash !== expectedHash)) return false
      const now = Date.now()
      users.set(key, { ...user, passwordHash: newHash, updatedAt: now, ...(expectedHash === undefined ? { tokensValidAfter: now } : {}) })
      return true
    })
  }
}

function isUser (value: unknown): value is User {
  const user = value as Partial<Record<keyof User, unknown>> | null
  return typeof user === 'object' && user !== null &&
    typeof user.username === 'string' && typeof user.passwordHash === 'string' &&
    typeof user.createdAt === 'number' && typeof user.updatedAt === 'number' &&
    (user.disabled === undefined || typeof user.disabled === 'boolean') &&
    (user.tokensValidAfter === undefined || typeof user.tokensValidAfter === 'number')
}
