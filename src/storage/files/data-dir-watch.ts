import { watch, type FSWatcher } from 'node:fs'
import path from 'node:path'

/**
 * How long a record file's last look (a stat that found it unchanged, or the read of it) answers
 * reads without another stat while no watch event says it changed: the bound on seeing a change
 * the watch missed.
 */
export const RECHECK_MS = 1000

/**
 * Which record files in DATA_DIR may have changed since a reader last looked, from an fs.watch
 * on the directory: the CLI replaces a file by renaming a new one into place, which a watch on
 * the old file would not see. Only the files asked about are counted, so the temporary and lock
 * files of every write do not pile up.
 */
export class DataDirWatch {
  readonly #dir: string
  #watcher: FSWatcher | undefined
  /** Per file name, how many changes were announced. */
  readonly #changes = new Map<string, number>()
  /** Events that named no file, or the watch failing: any file may have changed. */
  #unnamed = 0

  constructor (dir: string) {
    this.#dir = dir
  }

  /**
   * A number that moves whenever `name` may have changed; undefined while the directory cannot
   * be watched (it does not exist yet), when no earlier look can be trusted.
   */
  version (name: string): number | undefined {
    if (this.#watcher === undefined) this.#start()
    if (this.#watcher === undefined) return undefined
    const changes = this.#changes.get(name)
    if (changes === undefined) this.#changes.set(name, 0)
    return this.#unnamed + (changes ?? 0)
  }

  /** Says `name` changed: its watch event comes only later, and other readers in this process must see the write at once. */
  changed (name: string): void {
    const changes = this.#changes.get(name)
    if (changes !== undefined) this.#changes.set(name, changes + 1)
  }

  #start (): void {
    try {
      // Not persistent: watching never keeps a process (a CLI, a test) alive by itself.
      const watcher = watch(this.#dir, { persistent: false }, (_event, name) => {
        if (name === null) this.#unnamed++
        else this.changed(name)
      })
      watcher.on('error', () => {
        // The directory was removed, say: look again at every read until it can be watched anew.
        watcher.close()
        this.#watcher = undefined
        this.#unnamed++
      })
      this.#watcher = watcher
    } catch {
      // DATA_DIR is not there yet (a CLI before its first write).
    }
  }
}

const watches = new Map<string, DataDirWatch>()

/** The one watch of `dataDir` in this process, shared by every record file in it. */
export function dataDirWatch (dataDir: string): DataDirWatch {
  const dir = path.resolve(dataDir)
  let dirWatch = watches.get(dir)
  if (dirWatch === undefined) {
    dirWatch = new DataDirWatch(dir)
    watches.set(dir, dirWatch)
  }
  return dirWatch
}
