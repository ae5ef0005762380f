import type { Client } from './client.ts'

/**
 * Where registered clients live: Redis (shared by replicas) or a file under DATA_DIR (embedded).
 * Clients are state that must survive, like users.
 */
export interface ClientRepository {
  find (clientId: string): Promise<Client | undefined>
  /** Throws ClientExistsError when the id is taken. */
  create (client: Client): Promise<void>
  /**
   * Applies `change` to the client as stored, atomically with respect to other writers;
   * returns the stored result, or undefined when there is no such client.
   */
  update (clientId: string, change: (client: Client) => Client): Promise<Client | undefined>
  remove (clientId: string): Promise<boolean>
  /** Every client, sorted by id. */
  list (): Promise<Client[]>
  /**
   * At most `limit` clients in id order after the id `cursor` (from the first without one), and the
   * cursor of the next page when there may be more: stable while clients come and go, so paging
   * through 10,000 clients sees each one that stays registered exactly once.
   */
  page (cursor: string | undefined, limit: number): Promise<ClientPage>
  /**
   * Runs `plan` on every stored client and carries out the writes it returns, exclusive of every
   * other reconcile on these stores (replicas included): a second one sees the first's result.
   * Batched, so thousands of clients take seconds. Returns what `plan` returned.
   */
  reconcile<T extends { writes: ClientWrites }> (plan: (stored: Client[]) => T): Promise<T>
}

export interface ClientPage {
  clients: Client[]
  /** The `cursor` of the next page; undefined on the last. */
  next?: string
}

/** Clients to store (created or replaced whole) and ids to remove, in one batch. */
export interface ClientWrites {
  put: Client[]
  remove: string[]
}

/**
 * The client a stored JSON text describes, parsed once per distinct text: a grant reads the
 * record on every request, and an unchanged record need not be parsed (or its keys imported) again.
 */
export class ClientRecordCache {
  readonly #parsed = new Map<string, { text: string, client: Client }>()

  parse (clientId: string, text: string): Client {
    const cached = this.#parsed.get(clientId)
    if (cached?.text === text) return cached.client
    const client = JSON.parse(text) as Client
    this.#parsed.set(clientId, { text, client })
    return client
  }

  forget (clientId: string): void {
    this.#parsed.delete(clientId)
  }
}
