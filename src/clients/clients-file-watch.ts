import { createHash } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { applyClients, ClientsFileError, parseClientsFile, type ClientsPlan } from './clients-file.ts'
import type { ClientRepository } from './repository.ts'

/**
 * How often the file's content is read and hashed. Polling rather than fs.watch: a mounted
 * ConfigMap is updated by swapping the `..data` symlink of its directory, which watchers of the
 * file itself miss, and a read every 2 s costs nothing.
 */
export const CLIENTS_FILE_POLL_MS = 2000

/** What a reconciliation came to, for the log and the metric. `version` is the file content's hash. */
export interface ClientsFileEvents {
  applied (plan: ClientsPlan, version: string): void
  /** The file does not parse or cannot be read: nothing applied, the last good state stays. */
  invalid (error: Error, version: string): void
  /** The file parses, but the store refused the apply: tried again at the next poll. */
  failed (error: Error, version: string): void
}

/**
 * Continuous reconciliation with CLIENTS_FILE: applies the file at start and whenever its content
 * changes, removing the clients the file manages that it no longer declares. Replicas never fight:
 * the repository runs one reconcile at a time, and the next finds nothing left to change.
 */
export class ClientsFileReconciler {
  readonly #file: string
  readonly #clients: ClientRepository
  readonly #userAudience: string
  readonly #events: ClientsFileEvents
  /** The content last applied, or last found invalid: either is not tried again until the file changes. */
  #settled: string | undefined
  /** The message of the last failed apply, told once rather than at every poll. */
  #lastFailure: string | undefined
  #timer: NodeJS.Timeout | undefined
  #running: Promise<void> | undefined

  constructor (file: string, clients: ClientRepository, userAudience: string, events: ClientsFileEvents) {
    this.#file = file
    this.#clients = clients
    this.#userAudience = userAudience
    this.#events = events
  }

  start (): void {
    const poll = () => {
      this.#running ??= this.#reconcile().finally(() => { this.#running = undefined })
    }
    poll()
    this.#timer = setInterval(poll, CLIENTS_FILE_POLL_MS)
  }

  async stop (): Promise<void> {
    clearInterval(this.#timer)
    await this.#running
  }

  async #reconcile (): Promise<void> {
    let text: string
    try {
      text = await readFile(this.#file, 'utf8')
    } catch (error) {
      const version = `unreadable:${(error as NodeJS.ErrnoException).code ?? 'error'}`
      if (this.#settled !== version) this.#events.invalid(new ClientsFileError(`Cannot read ${this.#file} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`), version)
      this.#settled = version
      return
    }
    const version = createHash('sha256').update(text).digest('hex').slice(0, 16)
    if (this.#settled === version) return
    let declared
    try {
      declared = parseClientsFile(this.#file, text, this.#userAudience)
    } catch (error) {
      if (!(error instanceof ClientsFileError)) throw error
      this.#settled = version
      this.#events.invalid(error, version)
      return
    }
    try {
      const plan = await applyClients(this.#clients, declared, { prune: true, dryRun: false })
      this.#settled = version
      this.#lastFailure = undefined
      this.#events.applied(plan, version)
    } catch (error) {
      const message = (error as Error).message
      if (this.#lastFailure !== message) this.#events.failed(error as Error, version)
      this.#lastFailure = message
    }
  }
}
