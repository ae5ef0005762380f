import { scanKeys, waitForReplicas, type RedisConnection } from './connection.ts'
import type { RedisKeys } from './keys.ts'
import { canonicalUsername, pageOfUsernames, UserExistsError, usernameKey, type User, type UserPage, type UserRepository } from '../../users/repository.ts'

// KEYS: user hash. ARGV: username, passwordHash, createdAt, updatedAt.
const CREATE_SCRIPT = `
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'username', ARGV[1], 'passwordHash', ARGV[2], 'createdAt', ARGV[3], 'updatedAt', ARGV[4])
return 1`

// KEYS: user hash. ARGV: expected hash, new hash, updatedAt. A missing user has no hash to match.
const REPLACE_HASH_SCRIPT = `
if redis.call('HGET', KEYS[1], 'passwordHash') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'passwordHash', ARGV[2], 'updatedAt', ARGV[3])
return 1`

// KEYS: user hash. ARGV: new hash, updatedAt (also when earlier tokens end). Checked in the script so a removed user is not recreated half-empty.
const SET_HASH_SCRIPT = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'passwordHash', ARGV[1], 'updatedAt', ARGV[2], 'tokensValidAfter', ARGV[2])
return 1`

// KEYS: user hash. ARGV: '1' to disable (ending earlier tokens) or '0' to enable, updatedAt.
const SET_DISABLED_SCRIPT = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'disabled', ARGV[1], 'updatedAt', ARGV[2])
if ARGV[1] == '1' then redis.call('HSET', KEYS[1], 'tokensValidAfter', ARGV[2]) end
return 1`

/** ioredis adds a method for each command defined with defineCommand. */
type RedisWithUserScripts = RedisConnection & {
  userCreate (key: string, username: string, passwordHash: string, createdAt: number, updatedAt: number): Promise<number>
  userReplaceHash (key: string, expectedHash: string, newHash: string, updatedAt: number): Promise<number>
  userSetHash (key: string, newHash: string, updatedAt: number): Promise<number>
  userSetDisabled (key: string, disabled: '1' | '0', updatedAt: number): Promise<number>
}

/**
 * Users in Redis, shared by every replica: a hash per user (RedisKeys.user). State
 * that must survive: each change touches that one key (so one Cluster slot), atomically, and is
 * acknowledged only once a replica has it. list() scans for the keys: an operator's command, and
 * no index key that every change would have to keep in the same slot as the user.
 */
export class RedisUserRepository implements UserRepository {
  readonly #redis: RedisWithUserScripts
  readonly #keys: RedisKeys

  constructor (redis: RedisConnection, keys: RedisKeys) {
    // Through defineCommand: EVALSHA, falling back to EVAL after a restart or failover lost the script.
    redis.defineCommand('userCreate', { numberOfKeys: 1, lua: CREATE_SCRIPT })
    redis.defineCommand('userReplaceHash', { numberOfKeys: 1, lua: REPLACE_HASH_SCRIPT })
    redis.defineCommand('userSetHash', { numberOfKeys: 1, lua: SET_HASH_SCRIPT })
    redis.defineCommand('userSetDisabled', { numberOfKeys: 1, lua: SET_DISABLED_SCRIPT })
    this.#redis = redis as RedisWithUserScripts
    this.#keys = keys
  }

  async find (username: string): Promise<User | undefined> {
    const fields = await this.#redis.hgetall(this.#keys.user(usernameKey(username)))
    if (fields.username === undefined || fields.passwordHash === undefined) return undefined
    return {
      username: fields.username,
      passwordHash: fields.passwordHash,
      createdAt: Number(fields.createdAt),
      updatedAt: Number(fields.updatedAt),
      ...(fields.disabled === '1' ? { disabled: true } : {}),
      ...(fields.tokensValidAfter !== undefined ? { tokensValidAfter: Number(fields.tokensValidAfter) } : {})
    }
  }

  async create (user: User): Promise<void> {
    const username = canonicalUsername(user.username)
    const key = this.#keys.user(usernameKey(username))
    const created = await this.#redis.userCreate(key, username, user.passwordHash, user.createdAt, user.updatedAt)
    if (created === 0) throw new UserExistsError(username)
    await waitForReplicas(this.#redis, key)
  }

  async replacePasswordHash (username: string, expectedHash: string, newHash: string): Promise<boolean> {
    const key = this.#keys.user(usernameKey(username))
    const replaced = await this.#redis.userReplaceHash(key, expectedHash, newHash, Date.now())
    if (replaced === 1) await waitForReplicas(this.#redis, key)
    return replaced === 1
  }

  async setPasswordHash (username: string, newHash: string): Promise<boolean> {
    const key = this.#keys.user(usernameKey(username))
    const set = await this.#redis.userSetHash(key, newHash, Date.now())
    if (set === 1) await waitForReplicas(this.#redis, key)
    return set === 1
  }

  async setDisabled (username: string, disabled: boolean): Promise<boolean> {
    const key = this.#keys.user(usernameKey(username))
    const set = await this.#redis.userSetDisabled(key, disabled ? '1' : '0', Date.now())
    if (set === 1) await waitForReplicas(this.#redis, key)
    return set === 1
  }

  async remove (username: string): Promise<boolean> {
    const key = this.#keys.user(usernameKey(username))
    const removed = await this.#redis.del(key)
    if (removed === 1) await waitForReplicas(this.#redis, key)
    return removed === 1
  }

  async list (): Promise<string[]> {
    const keys = await scanKeys(this.#redis, this.#keys.users)
    // A user removed meanwhile answers null and is left out.
    const usernames = await Promise.all(keys.map(async (key) => await this.#redis.hget(key, 'username')))
    return usernames.filter((username) => typeof username === 'string').sort()
  }

  /** Over list(): accounts are an operator's few, and SCAN has no order a cursor could resume. */
  async page (cursor: string | undefined, limit: number): Promise<UserPage> {
    return await pageOfUsernames(await this.list(), cursor, limit, async (username) => await this.find(username))
  }
}
