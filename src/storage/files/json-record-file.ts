import { randomBytes } from 'node:crypto'
import { open, rename, rm, stat, type FileHandle } from 'node:fs/promises'
import path from 'node:path'
import { lock } from 'proper-lockfile'
import { prepareDataDir } from './data-dir.ts'
import { dataDirWatch, RECHECK_MS, type DataDirWatch } from './data-dir-watch.ts'

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

/** What tells one version of the file from another: every write renames a new file into place. */
interface FileIdentity {
  ino: bigint
  mtimeNs: bigint
  size: bigint
}

/** No file at all: read as no records, and told apart from every file that can appear. */
const ABSENT: FileIdentity = { ino: -1n, mtimeNs: -1n, size: -1n }

/** The file as last read, and when it was last looked at. */
interface Snapshot<T> extends FileIdentity {
  records: Map<string, T>
  /** The watch's version of the file when it was last looked at. */
  version: number | undefined
  /** When the last look (a stat or a read) began. */
  checkedAt: number
}

/**
 * Records kept in `<dataDir>/<name>` as `{ "<property>": [...] }`, for the embedded
 * single-instance mode, where a CLI may change the file while the server runs. A read is answered
 * from memory while the watch of DATA_DIR has announced no change and the last look is under
 * RECHECK_MS old, else it costs one stat (and a reread when the file was replaced): each file
 * operation is a job on libuv's threadpool, where it would wait behind the argon2 hashes of other
 * logins. So another process's change is seen as soon as its watch event arrives, and by every
 * read that starts RECHECK_MS after it even if the event is lost; a write through this process is
 * seen by its next read. A write is read-modify-write under a lock, replacing the file atomically,
 * so nothing is ever half-written.
 */
export class JsonRecordFile<T> {
  readonly #dataDir: string
  readonly #name: string
  readonly #file: string
  readonly #lockFile: string
  readonly #format: RecordFileFormat<T>
  readonly #watch: DataDirWatch
  #snapshot: Snapshot<T> | undefined

  constructor (dataDir: string, name: string, format: RecordFileFormat<T>) {
    this.#dataDir = dataDir
    this.#name = name
    this.#file = path.join(dataDir, name)
    this.#lockFile = `${this.#file}.lock`
    this.#format = format
    this.#watch = dataDirWatch(dataDir)
  }

  /**
   * The records by key, as the file held them at most RECHECK_MS before this call (at once when
   * the watch saw the change), or with `fresh`, as it holds them now. Treat as read-only: it is
   * the cached snapshot.
   */
  async read ({ fresh = false } = {}): Promise<Map<string, T>> {
    const version = this.#watch.version(this.#name)
    const checkedAt = Date.now()
    const cached = this.#snapshot
    if (!fresh && cached !== undefined && version !== undefined && cached.version === version && checkedAt - cached.checkedAt < RECHECK_MS) return cached.records
    const current = await stat(this.#file, { bigint: true }).catch((error: unknown) => hasErrorCode(error, 'ENOENT') ? ABSENT : undefined)
    if (cached !== undefined && cached.ino === current?.ino && cached.mtimeNs === current.mtimeNs && cached.size === current.size) {
      cached.version = version
      cached.checkedAt = checkedAt
      return cached.records
    }
    let handle: FileHandle
    try {
      handle = await open(this.#file, 'r')
    } catch (error) {
      if (!hasErrorCode(error, 'ENOENT')) throw error
      this.#snapshot = { ...ABSENT, records: new Map(), version, checkedAt }
      return this.#snapshot.records
    }
    try {
      // Every write renames a new file into place, so a new inode, mtime or size means another write happened.
      const { ino, mtimeNs, size } = await handle.stat({ bigint: true })
      const records = this.#parse(await handle.readFile('utf8'))
      this.#snapshot = { ino, mtimeNs, size, records, version, checkedAt }
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
      // The file as it is now, which no other writer can change while the lock is held. A copy, so a
      // failed write leaves the snapshot as the file still is.
      const records = new Map(await this.read({ fresh: true }))
      if (!change(records)) return false
      const written = await this.#write(records)
      // Other readers in this process see the write at once, and this one needs no reread.
      this.#watch.changed(this.#name)
      this.#snapshot = { ...written, records, version: this.#watch.version(this.#name), checkedAt: Date.now() }
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

  /** Replaces the file all at once: readers see the old records or the new, never half a file. Returns what tells the new file apart. */
  async #write (records: Map<string, T>): Promise<FileIdentity> {
    const temporaryFile = `${this.#file}.${randomBytes(6).toString('hex')}.tmp`
    try {
      const handle = await open(temporaryFile, 'wx', 0o600)
      let written: FileIdentity
      try {
        await handle.writeFile(JSON.stringify({ [this.#format.property]: [...records.values()] }, null, 2) + '\n')
        await handle.sync()
        // The rename keeps the inode, mtime and size.
        const { ino, mtimeNs, size } = await handle.stat({ bigint: true })
        written = { ino, mtimeNs, size }
      } finally {
        await handle.close()
      }
      await rename(temporaryFile, this.#file)
      return written
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
