import type { Redis } from 'ioredis'
import { canonicalUsername, UserExistsError, usernameKey, type User, type UserRepository } from './repository.js'

// KEYS: user hash, users set. ARGV: username, passwordHash, createdAt, updatedAt, usernameKey.
const CREATE_SCRIPT = `
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'username', ARGV[1], 'passwordHash', ARGV[2], 'createdAt', ARGV[3], 'updatedAt', ARGV[4])
redis.call('SADD', KEYS[2], ARGV[5])
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

// KEYS: user hash, users set. ARGV: usernameKey.
const REMOVE_SCRIPT = `
local removed = redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[1])
return removed`

/**
 * Users in Redis, shared by every replica: a hash per user at `<prefix>user:<usernameKey>` and
 * the set `<prefix>users` of usernameKeys for list(). Each change is one Lua script, so it is atomic.
 */
export class RedisUserRepository implements UserRepository {
  readonly #redis: Redis
  readonly #keyPrefix: string
  readonly #usersKey: string

  constructor (redis: Redis, keyPrefix: string) {
    this.#redis = redis
    this.#keyPrefix = keyPrefix
    this.#usersKey = `${keyPrefix}users`
  }

  /** The hash of the user with this usernameKey. */
  #userKey (key: string): string {
    return `${this.#keyPrefix}user:${key}`
  }

  async find (username: string): Promise<User | undefined> {
    const fields = await this.#redis.hgetall(this.#userKey(usernameKey(username)))
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
    const key = usernameKey(username)
    const created = await this.#redis.eval(CREATE_SCRIPT, 2, this.#userKey(key), this.#usersKey,
      username, user.passwordHash, user.createdAt, user.updatedAt, key)
    if (created === 0) throw new UserExistsError(username)
  }

  async replacePasswordHash (username: string, expectedHash: string, newHash: string): Promise<boolean> {
    const replaced = await this.#redis.eval(REPLACE_HASH_SCRIPT, 1, this.#userKey(usernameKey(username)), expectedHash, newHash, Date.now())
    return replaced === 1
  }

  async setPasswordHash (username: string, newHash: string): Promise<boolean> {
    const set = await this.#redis.eval(SET_HASH_SCRIPT, 1, this.#userKey(usernameKey(username)), newHash, Date.now())
    return set === 1
  }

  async setDisabled (username: string, disabled: boolean): Promise<boolean> {
    const set = await this.#redis.eval(SET_DISABLED_SCRIPT, 1, this.#userKey(usernameKey(username)), disabled ? '1' : '0', Date.now())
    return set === 1
  }

  async remove (username: string): Promise<boolean> {
    const key = usernameKey(username)
    const removed = await this.#redis.eval(REMOVE_SCRIPT, 2, this.#userKey(key), this.#usersKey, key)
    return removed === 1
  }

  async list (): Promise<string[]> {
    const keys = await this.#redis.smembers(this.#usersKey)
    // One round trip for all names; a user removed meanwhile answers null and is left out.
    const pipeline = this.#redis.pipeline()
    for (const key of keys) pipeline.hget(this.#userKey(key), 'username')
    const replies = (await pipeline.exec()) ?? []
    const usernames: string[] = []
    for (const [error, username] of replies) {
      if (error !== null) throw error
      if (typeof username === 'string') usernames.push(username)
    }
    return usernames.sort()
  }
}
