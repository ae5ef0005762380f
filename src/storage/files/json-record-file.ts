import { randomBytes } from 'node:crypto'
import { open, rename, rm, stat, type FileHandle } from 'node:fs/promises'
import path from 'node:path'
import { lock } from 'proper-lockfile'
import { prepareDataDir } from './data-dir.js'

const LOCK_RETRY_MS = 20
const LOCK_WAIT_MS = 3000
// The holder refreshes the lock's mtime every STALE_LOCK_MS / 2, so an older lock was left by a process that died.
const STALE_LOCK_MS = 10_000

/** What a record file holds, and how its records are told apart and checked. */
export interface RecordFileFormat<T> {
  /** The file's one property, holding the array of records (`{ "users": [...] }`), and the name of the CLI command that writes the file beside the server. */
  property: string
  /** The key a record is found by. */
  keyOf: (record: T) => string
  isRecord: (value: unknown) => value is T
  /** The fields every record has, for the message about a corrupt file. */
  requiredFields: string
}

/** The file as last read, and how to tell whether it has been replaced since. */
interface Snapshot<T> {
  ino: bigint
  mtimeNs: bigint
  size: bigint
  records: Map<string, T>
}

/**
 * Records kept in `<dataDir>/<name>` as `{ "<property>": [...] }`, for the embedded
 * single-instance mode, where a CLI may change the file while the server runs. A read costs one
 * stat while the file is unchanged, so the CLI's changes are seen at once; a write is
 * read-modify-write under a lock, replacing the file atomically, so nothing is ever half-written.
 */
export class JsonRecordFile<T> {
  readonly #dataDir: string
  readonly #file: string
  readonly #lockFile: string
  readonly #format: RecordFileFormat<T>
  #snapshot: Snapshot<T> | undefined

  constructor (dataDir: string, name: string, format: RecordFileFormat<T>) {
    this.#dataDir = dataDir
    this.#file = path.join(dataDir, name)
    this.#lockFile = `${this.#file}.lock`
    this.#format = format
  }

  /** The records by key, as the file holds them now. Treat as read-only: it is the cached snapshot. */
  async read (): Promise<Map<string, T>> {
    // The common case, nothing written since the last read, costs one stat: each file operation is
    // a job on libuv's threadpool, where it waits behind the argon2 hashes of other logins.
    const cached = this.#snapshot
    const current = await stat(this.#file, { bigint: true }).catch(() => undefined)
    if (cached !== undefined && cached.ino === current?.ino && cached.mtimeNs === current.mtimeNs && cached.size === current.size) return cached.records
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
      const records = this.#parse(await handle.readFile('utf8'))
      this.#snapshot = { ino, mtimeNs, size, records }
      return records
    } finally {
      await handle.close()
    }
  }

  /** Applies `change` to the current records under the lock and writes them if it reports a change. */
  async update (change: (records: Map<string, T>) => boolean): Promise<boolean> {
    await prepareDataDir(this.#dataDir)
    const release = await this.#lock()
    try {
      // A copy, so a failed write leaves the snapshot as the file still is.
      const records = new Map(await this.read())
      if (!change(records)) return false
      await this.#write(records)
      return true
    } finally {
      await release()
    }
  }

  #parse (text: string): Map<string, T> {
    const { property, keyOf, isRecord, requiredFields } = this.#format
    const unreadable = `Cannot read ${property} from ${this.#file}: it is corrupt and is left untouched; restore it from a backup or repair it.`
    let data: unknown
    try {
      data = JSON.parse(text)
    } catch {
      // Not the parser's message: it quotes the file, password hashes or secret digests included.
      throw new Error(`${unreadable} (not valid JSON)`)
    }
    const records = (data as Record<string, unknown> | null)?.[property]
    if (!Array.isArray(records) || !records.every(isRecord)) throw new Error(`${unreadable} (expected { "${property}": [...] } with ${requiredFields})`)
    return new Map(records.map((record) => [keyOf(record), record]))
  }

  /** Replaces the file all at once: readers see the old records or the new, never half a file. */
  async #write (records: Map<string, T>): Promise<void> {
    const temporaryFile = `${this.#file}.${randomBytes(6).toString('hex')}.tmp`
    try {
      const handle = await open(temporaryFile, 'wx', 0o600)
      try {
        await handle.writeFile(JSON.stringify({ [this.#format.property]: [...records.values()] }, null, 2) + '\n')
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
   * proper-lockfile: an atomic mkdir of `<name>.lock`, whose mtime the holder keeps fresh, so a
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
      throw new Error(`Cannot write ${this.#file}: another process holds ${this.#lockFile}. If no ${this.#format.property} command or server is writing, remove that directory.`)
    }
  }
}

function hasErrorCode (error: unknown, code: string): boolean {
  return (error as NodeJS.ErrnoException | undefined)?.code === code
}
