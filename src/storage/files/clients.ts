import { JsonRecordFile } from './json-record-file.ts'
import { ClientExistsError, type Client } from '../../clients/client.ts'
import type { ClientPage, ClientRepository, ClientWrites } from '../../clients/repository.ts'

/**
 * Clients in `<dataDir>/clients.json` (by client id), for the embedded single-instance mode: the
 * clients CLI may change the file while the server runs (see JsonRecordFile).
 */
export class FileClientRepository implements ClientRepository {
  readonly #file: JsonRecordFile<Client>

  constructor (dataDir: string) {
    this.#file = new JsonRecordFile(dataDir, 'clients.json', {
      property: 'clients',
      keyOf: (client) => client.clientId,
      isRecord: (value): value is Client => typeof (value as Partial<Client> | null)?.clientId === 'string',
      requiredFields: 'a clientId each'
    })
  }

  async find (clientId: string): Promise<Client | undefined> {
    return (await this.#file.read()).get(clientId)
  }

  async create (client: Client): Promise<void> {
    await this.#file.update((clients) => {
      if (clients.has(client.clientId)) throw new ClientExistsError(client.clientId)
      clients.set(client.clientId, client)
      return true
    })
  }

  async update (clientId: string, change: (client: Client) => Client): Promise<Client | undefined> {
    let changed: Client | undefined
    await this.#file.update((clients) => {
      const client = clients.get(clientId)
      if (client === undefined) return false
      changed = change(client)
      clients.set(clientId, changed)
      return true
    })
    return changed
  }

  remove (clientId: string): Promise<boolean> {
    return this.#file.update((clients) => clients.delete(clientId))
  }

  async list (): Promise<Client[]> {
    return sortedById((await this.#file.read()).values())
  }

  async page (cursor: string | undefined, limit: number): Promise<ClientPage> {
    const after = (await this.list()).filter((client) => cursor === undefined || client.clientId > cursor)
    const clients = after.slice(0, limit)
    return after.length > limit ? { clients, next: clients[clients.length - 1].clientId } : { clients }
  }

  /** Under the file's lock, in one write of the file. */
  async reconcile<T extends { writes: ClientWrites }> (plan: (stored: Client[]) => T): Promise<T> {
    let planned: T | undefined
    await this.#file.update((clients) => {
      planned = plan(sortedById(clients.values()))
      for (const client of planned.writes.put) clients.set(client.clientId, client)
      for (const clientId of planned.writes.remove) clients.delete(clientId)
      return planned.writes.put.length + planned.writes.remove.length > 0
    })
    return planned!
  }
}

const sortedById = (clients: Iterable<Client>) => [...clients].sort((a, b) => a.clientId < b.clientId ? -1 : 1)
