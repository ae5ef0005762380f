import { randomBytes } from 'node:crypto'
import { mkdir, open, rename, rm, stat, type FileHandle } from 'node:fs/promises'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { ClientExistsError, type Client } from './client.js'
import type { ClientRepository } from './repository.js'

const LOCK_RETRY_MS = 20
const LOCK_WAIT_MS = 3000
// Far longer than any write holds the lock, so an older lock file was left by a process that died.
const STALE_LOCK_MS = 10_000

interface Snapshot {
  ino: bigint
  mtimeNs: bigint
  size: bigint
  clients: Map<string, Client>
}

/**
 * Clients in `<dataDir>/clients.json`, for the embedded single-instance mode, kept the way
 * users.json is (src/users/file-repository.ts): reads cost one stat while the file is unchanged,
 * so the CLI's changes are seen at once; writes are read-modify-write under a lock file and
 * replace the file atomically, so nothing is ever half-written.
 */
export class FileClientRepository implements ClientRepository {
  readonly #dataDir: string
  readonly #file: string
  readonly #lockFile: string
  #snapshot: Snapshot | undefined

  constructor (dataDir: string) {
    this.#dataDir = dataDir
    this.#file = path.join(dataDir, 'clients.json')
    this.#lockFile = `${this.#file}.lock`
  }

  async find (clientId: string): Promise<Client | undefined> {
    return (await this.#read()).get(clientId)
  }

  async create (client: Client): Promise<void> {
    await this.#update((clients) => {
      if (clients.has(client.clientId)) throw new ClientExistsError(client.clientId)
      clients.set(client.clientId, client)
      return true
    })
  }

  async update (clientId: string, change: (client: Client) => Client): Promise<Client | undefined> {
    let changed: Client | undefined
    await this.#update((clients) => {
      const client = clients.get(clientId)
      if (client === undefined) return false
      changed = change(client)
      clients.set(clientId, changed)
      return true
    })
    return changed
  }

  remove (clientId: string): Promise<boolean> {
    return this.#update((clients) => clients.delete(clientId))
  }

  async list (): Promise<Client[]> {
    return [...(await this.#read()).values()].sort((a, b) => a.clientId < b.clientId ? -1 : 1)
  }

  async #read (): Promise<Map<string, Client>> {
    const cached = this.#snapshot
    const current = await stat(this.#file, { bigint: true }).catch(() => undefined)
    if (cached !== undefined && cached.ino === current?.ino && cached.mtimeNs === current.mtimeNs && cached.size === current.size) return cached.clients
    let handle: FileHandle
    try {
      handle = await open(this.#file, 'r')
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return new Map()
      throw error
    }
    try {
      const { ino, mtimeNs, size } = await handle.stat({ bigint: true })
      const clients = parseClientsFile(await handle.readFile('utf8'), this.#file)
      this.#snapshot = { ino, mtimeNs, size, clients }
      return clients
    } finally {
      await handle.close()
    }
  }

  async #update (change: (clients: Map<string, Client>) => boolean): Promise<boolean> {
    await mkdir(this.#dataDir, { recursive: true, mode: 0o700 })
    const lock = await this.#lock()
    try {
      const clients = new Map(await this.#read())
      if (!change(clients)) return false
      await this.#write(clients)
      return true
    } finally {
      await lock.close()
      await rm(this.#lockFile, { force: true })
    }
  }

  async #write (clients: Map<string, Client>): Promise<void> {
    const temporaryFile = `${this.#file}.${randomBytes(6).toString('hex')}.tmp`
    try {
      const handle = await open(temporaryFile, 'wx', 0o600)
      try {
        await handle.writeFile(JSON.stringify({ clients: [...clients.values()] }, null, 2) + '\n')
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

  async #lock (): Promise<FileHandle> {
    const deadline = Date.now() + LOCK_WAIT_MS
    while (true) {
      try {
        return await open(this.#lockFile, 'wx', 0o600)
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
      }
      const lockedAt = await stat(this.#lockFile).then((stats) => stats.mtimeMs, () => undefined)
      if (lockedAt !== undefined && Date.now() - lockedAt > STALE_LOCK_MS) {
        await rm(this.#lockFile, { force: true })
        continue
      }
      if (Date.now() > deadline) {
        throw new Error(`Cannot write ${this.#file}: another process holds ${this.#lockFile}. If no clients command or server is writing, remove that file.`)
      }
      await sleep(LOCK_RETRY_MS)
    }
  }
}

function parseClientsFile (text: string, file: string): Map<string, Client> {
  const unreadable = `Cannot read clients from ${file}: it is corrupt and is left untouched; restore it from a backup or repair it.`
  let data: unknown
  try {
    data = JSON.parse(text)
  } catch {
    // Not the parser's message: it would quote the file.
    throw new Error(`${unreadable} (not valid JSON)`)
  }
  const clients = (data as { clients?: unknown } | null)?.clients
  if (!Array.isArray(clients) || !clients.every((client) => typeof (client as Partial<Client> | null)?.clientId === 'string')) {
    throw new Error(`${unreadable} (expected { "clients": [...] } with a clientId each)`)
  }
  return new Map((clients as Client[]).map((client) => [client.clientId, client]))
}
