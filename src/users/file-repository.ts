import { randomBytes } from 'node:crypto'
import { open, rename, rm, stat, type FileHandle } from 'node:fs/promises'
import path from 'node:path'
import { lock } from 'proper-lockfile'
import { prepareDataDir } from '../data-dir.js'
import { canonicalUsername, UserExistsError, usernameKey, type User, type UserRepository } from './repository.js'

const LOCK_RETRY_MS = 20
const LOCK_WAIT_MS = 3000
// The holder refreshes the lock's mtime every STALE_LOCK_MS / 2, so an older lock was left by a process that died.
const STALE_LOCK_MS = 10_000

/** The file as last read, and how to tell whether it has been replaced since. */
interface Snapshot {
  ino: bigint
  mtimeNs: bigint
  size: bigint
  /** By usernameKey. */
  users: Map<string, User>
}

/**
 * Users in `<dataDir>/users.json`, for the embedded single-instance mode. The CLI may change the
 * file while the server runs: reads pick that up by checking whether the file was replaced, and
 * every write is read-modify-write under a lock file, replacing the file atomically.
 */
export class FileUserRepository implements UserRepository {
  readonly #dataDir: string
  readonly #file: string
  readonly #lockFile: string
  #snapshot: Snapshot | undefined

  constructor (dataDir: string) {
    this.#dataDir = dataDir
    this.#file = path.join(dataDir, 'users.json')
    this.#lockFile = `${this.#file}.lock`
  }

  async find (username: string): Promise<User | undefined> {
    return (await this.#read()).get(usernameKey(username))
  }

  async create (user: User): Promise<void> {
    const username = canonicalUsername(user.username)
    const key = usernameKey(username)
    await this.#update((users) => {
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
    return this.#update((users) => {
      const user = users.get(key)
      if (user === undefined) return false
      const now = Date.now()
      users.set(key, { ...user, disabled, updatedAt: now, ...(disabled ? { tokensValidAfter: now } : {}) })
      return true
    })
  }

  remove (username: string): Promise<boolean> {
    const key = usernameKey(username)
    return this.#update((users) => users.delete(key))
  }

  async list (): Promise<string[]> {
    return [...(await this.#read()).values()].map((user) => user.username).sort()
  }

  /**
   * Sets the hash of an existing user; with expectedHash (a rehash at login), only while the stored
   * one still equals it, else (a password change) ending earlier tokens.
   */
  #storeHash (username: string, newHash: string, expectedHash?: string): Promise<boolean> {
    const key = usernameKey(username)
    return this.#update((users) => {
      const user = users.get(key)
      if (user === undefined || (expectedHash !== undefined && user.passwordHash !== expectedHash)) return false
      const now = Date.now()
      users.set(key, { ...user, passwordHash: newHash, updatedAt: now, ...(expectedHash === undefined ? { tokensValidAfter: now } : {}) })
      return true
    })
  }

  async #read (): Promise<Map<string, User>> {
    // The common case, nothing written since the last read, costs one stat: each file operation is
    // a job on libuv's threadpool, where it waits behind the argon2 hashes of other logins.
    const cached = this.#snapshot
    const current = await stat(this.#file, { bigint: true }).catch(() => undefined)
    if (cached !== undefined && cached.ino === current?.ino && cached.mtimeNs === current.mtimeNs && cached.size === current.size) return cached.users
    let handle: FileHandle
    try {
      handle = await open(this.#file, 'r')
    } catch (error) {
      if (hasErrorCode(error, 'ENOENT')) return new Map()
      throw error
    }
    try {
      // Every write renames a new file into place, so a new inode, mtime or size means another write happened.
      const { ino, mtimeNs, size } = await handle.stat({ bigint: true })
      const users = parseUsersFile(await handle.readFile('utf8'), this.#file)
      this.#snapshot = { ino, mtimeNs, size, users }
      return users
    } finally {
      await handle.close()
    }
  }

  /** Applies `change` to the current users under the lock and writes them if it reports a change. */
  async #update (change: (users: Map<string, User>) => boolean): Promise<boolean> {
    await prepareDataDir(this.#dataDir)
    const release = await this.#lock()
    try {
      // A copy, so a failed write leaves the snapshot as the file still is.
      const users = new Map(await this.#read())
      if (!change(users)) return false
      await this.#write(users)
      return true
    } finally {
      await release()
    }
  }

  /** Replaces the file all at once: readers see the old users or the new, never half a file. */
  async #write (users: Map<string, User>): Promise<void> {
    const temporaryFile = `${this.#file}.${randomBytes(6).toString('hex')}.tmp`
    try {
      const handle = await open(temporaryFile, 'wx', 0o600)
      try {
        await handle.writeFile(JSON.stringify({ users: [...users.values()] }, null, 2) + '\n')
        await handle.sync()
      } finally {
        await handle.close()
      }
      await rename(temporaryFile, this.#file)
    } catch (error) {
      await rm(temporaryFile, { force: true })
      throw error
    }
  }

  /**
   * proper-lockfile: an atomic mkdir of `users.json.lock`, whose mtime the holder keeps fresh, so a
   * lock is broken only when its holder died, never while a slow holder is still writing.
   */
  async #lock (): Promise<() => Promise<void>> {
    try {
      return await lock(this.#file, {
        lockfilePath: this.#lockFile,
        realpath: false,
        stale: STALE_LOCK_MS,
        retries: { retries: Math.ceil(LOCK_WAIT_MS / LOCK_RETRY_MS), minTimeout: LOCK_RETRY_MS, maxTimeout: LOCK_RETRY_MS, factor: 1 }
      })
    } catch (error) {
      if (!hasErrorCode(error, 'ELOCKED')) throw error
      throw new Error(`Cannot write ${this.#file}: another process holds ${this.#lockFile}. If no users command or server is writing, remove that directory.`)
    }
  }
}

function parseUsersFile (text: string, file: string): Map<string, User> {
  const unreadable = `Cannot read users from ${file}: it is corrupt and is left untouched; restore it from a backup or repair it.`
  let data: unknown
  try {
    data = JSON.parse(text)
  } catch {
    // Not the parser's message: it quotes the file, password hashes included.
    throw new Error(`${unreadable} (not valid JSON)`)
  }
  const users = (data as { users?: unknown } | null)?.users
  if (!Array.isArray(users) || !users.every(isUser)) throw new Error(`${unreadable} (expected { "users": [...] } with username, passwordHash, createdAt, updatedAt)`)
  return new Map(users.map((user) => [usernameKey(user.username), user]))
}

function isUser (value: unknown): value is User {
  const user = value as Partial<Record<keyof User, unknown>> | null
  return typeof user === 'object' && user !== null &&
    typeof user.username === 'string' && typeof user.passwordHash === 'string' &&
    typeof user.createdAt === 'number' && typeof user.updatedAt === 'number' &&
    (user.disabled === undefined || typeof user.disabled === 'boolean') &&
    (user.tokensValidAfter === undefined || typeof user.tokensValidAfter === 'number')
}

function hasErrorCode (error: unknown, code: string): boolean {
  return (error as NodeJS.ErrnoException | undefined)?.code === code
}
