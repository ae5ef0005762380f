import { createHash } from 'node:crypto'
import { Value } from '@sinclair/typebox/value'
import { ValueErrorType } from '@sinclair/typebox/errors'
import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Node } from 'yaml'
import { ClientsFile, ClientsFileEntry } from '../schemas/clients-file.ts'
import { InvalidClientError, MANAGED_BY_CLIENTS_FILE, registrationTime, validateClient, type Client, type ClientSecret } from './client.ts'
import type { ClientRepository, ClientWrites } from './repository.ts'

/** A clients file that cannot be applied: the message names the file, the line and the field. */
export class ClientsFileError extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'ClientsFileError'
  }
}

/** A client the file declares, as the store would hold it, and where the file declares it. */
export interface DeclaredClient {
  entry: ClientsFileEntry
  /** `file:line` of its entry, for messages about it. */
  at: string
}

/** The file's fields, in the schema's order: how a plan names what changes. */
const FIELDS = Object.keys(ClientsFileEntry.properties)

/** The names a plaintext secret might be written under: refused outright, whatever the schema says. */
const SECRET_KEYS = new Set(['secret', 'secrets', 'clientSecret', 'client_secret'])

/** `sha256:<hex>` of a secret, as the clients file declares it (and `clients generate-secret` prints). */
export function fileDigest (secret: string): string {
  return `sha256:${createHash('sha256').update(secret).digest('hex')}`
}

/** The stored digest (SHA-256, base64url: see secrets.ts) of a file's `sha256:<hex>`, and back. */
const storedDigest = (digest: string) => Buffer.from(digest.slice('sha256:'.length), 'hex').toString('base64url')
const declaredDigest = (digest: string) => `sha256:${Buffer.from(digest, 'base64url').toString('hex')}`

/**
 * The clients a file's text declares, checked as a whole: YAML, the schema (no unknown field, no
 * plaintext secret), each client's own rules (`userAudience` is JWT_AUDIENCE) and unique ids.
 * Throws ClientsFileError naming `file`, the line and the field of the first problem.
 */
export function parseClientsFile (file: string, text: string, userAudience: string): DeclaredClient[] {
  const lineCounter = new LineCounter()
  const document = parseDocument(text, { lineCounter, prettyErrors: false })
  const where = (offset: number) => {
    const { line, col } = lineCounter.linePos(offset)
    return `${file}:${line}:${col}`
  }
  const yamlError = document.errors[0]
  // Not the parser's pretty message: it quotes the file's text.
  if (yamlError !== undefined) throw new ClientsFileError(`${where(yamlError.pos[0])}: not valid YAML (${yamlError.code})`)
  const value: unknown = document.toJS()

  const secretKey = findSecretKey(value)
  if (secretKey !== undefined) {
    throw new ClientsFileError(`${where(offsetOf(document.contents, secretKey))}: ${fieldName(secretKey)}: a plaintext secret never goes in the clients file; declare its digest in secretDigests (clients generate-secret prints both)`)
  }
  const schemaError = Value.Errors(ClientsFile, value).First()
  if (schemaError !== undefined) {
    const path = schemaError.path.split('/').slice(1).map((segment) => segment.replace(/~1/g, '/').replace(/~0/g, '~'))
    const problem = schemaError.type === ValueErrorType.ObjectAdditionalProperties
      ? 'unknown field'
      : schemaError.type === ValueErrorType.ObjectRequiredProperty ? 'required field missing' : schemaError.message
    throw new ClientsFileError(`${where(offsetOf(document.contents, path))}: ${fieldName(path)}: ${problem}`)
  }

  const declared: DeclaredClient[] = []
  const seen = new Map<string, string>()
  ;(value as ClientsFile).clients.forEach((entry, index) => {
    const at = where(offsetOf(document.contents, ['clients', String(index)]))
    const previous = seen.get(entry.id)
    if (previous !== undefined) throw new ClientsFileError(`${at}: clients[${index}].id: "${entry.id}" is declared twice (first at ${previous})`)
    seen.set(entry.id, at)
    try {
      validateClient(clientOf(entry, 0, 0, undefined, MANAGED_BY_CLIENTS_FILE), userAudience)
    } catch (error) {
      if (error instanceof InvalidClientError) throw new ClientsFileError(`${at}: clients[${index}] (${entry.id}): ${error.message}`)
      throw error
    }
    declared.push({ entry, at })
  })
  return declared
}

/** The path of the first key that would hold a plaintext secret, in a client entry or anywhere else. */
function findSecretKey (value: unknown, path: string[] = []): string[] | undefined {
  if (typeof value !== 'object' || value === null) return undefined
  for (const [key, inner] of Object.entries(value)) {
    if (!Array.isArray(value) && SECRET_KEYS.has(key)) return [...path, key]
    const found = findSecretKey(inner, [...path, key])
    if (found !== undefined) return found
  }
  return undefined
}

/** `clients[1].federated.issuer` for the path clients/1/federated/issuer. */
function fieldName (path: string[]): string {
  return path.map((segment, index) => /^\d+$/.test(segment) ? `[${segment}]` : index === 0 ? segment : `.${segment}`).join('') || '(the file)'
}

/** Where a path's node starts: a field's key, else the nearest node the path reaches. */
function offsetOf (root: unknown, path: string[]): number {
  let node = root as Node | null
  let offset = node?.range?.[0] ?? 0
  for (const segment of path) {
    if (isMap(node)) {
      const pair = node.items.find((item) => isScalar(item.key) && String(item.key.value) === segment)
      if (pair === undefined) break
      offset = (pair.key as Node).range?.[0] ?? offset
      node = pair.value as Node | null
    } else if (isSeq(node)) {
      const item = node.items[Number(segment)] as Node | undefined
      if (item === undefined) break
      offset = item.range?.[0] ?? offset
      node = item
    } else {
      break
    }
  }
  return offset
}

/**
 * The client an entry declares, as stored: by a clients-file apply (`managedBy` clients-file) or
 * the admin API (none). `secrets` keeps each digest's first createdAt, and its expiry when it is
 * being rotated out, from `previous`.
 */
export function clientOf (entry: ClientsFileEntry, createdAt: number, updatedAt: number, previous: Client | undefined, managedBy: Client['managedBy']): Client {
  const previousSecrets = new Map((previous?.secrets ?? []).map((secret) => [secret.digest, secret]))
  const secrets = entry.secretDigests?.map((digest): ClientSecret => {
    const stored = storedDigest(digest)
    const before = previousSecrets.get(stored)
    return { digest: stored, createdAt: before?.createdAt ?? updatedAt, ...(before?.expiresAt !== undefined ? { expiresAt: before.expiresAt } : {}) }
  })
  return {
    clientId: entry.id,
    scopes: entry.scopes,
    audiences: entry.audiences,
    ...(entry.serves !== undefined ? { serves: entry.serves } : {}),
    ...(entry.exchangeAudiences !== undefined ? { exchangeAudiences: entry.exchangeAudiences } : {}),
    ...(entry.ttlSeconds !== undefined ? { tokenTtlSeconds: entry.ttlSeconds } : {}),
    ...(secrets !== undefined ? { secrets } : {}),
    ...(entry.jwksUri !== undefined ? { jwksUri: entry.jwksUri } : {}),
    ...(entry.jwks !== undefined ? { jwks: entry.jwks as Client['jwks'] } : {}),
    ...(entry.federated !== undefined ? { federated: entry.federated } : {}),
    ...(managedBy !== undefined ? { managedBy } : {}),
    createdAt,
    updatedAt
  }
}

/** A stored client as the clients file would declare it: its secrets in force as `sha256:<hex>` digests. */
export function entryOf (client: Client, now: number): ClientsFileEntry {
  const secrets = client.secrets?.filter((secret) => secret.expiresAt === undefined || secret.expiresAt > now)
  return {
    id: client.clientId,
    scopes: client.scopes,
    audiences: client.audiences,
    ...(client.serves !== undefined ? { serves: client.serves } : {}),
    ...(client.exchangeAudiences !== undefined ? { exchangeAudiences: client.exchangeAudiences } : {}),
    ...(client.tokenTtlSeconds !== undefined ? { ttlSeconds: client.tokenTtlSeconds } : {}),
    ...(secrets !== undefined ? { secretDigests: secrets.map((secret) => declaredDigest(secret.digest)) } : {}),
    ...(client.jwksUri !== undefined ? { jwksUri: client.jwksUri } : {}),
    ...(client.jwks !== undefined ? { jwks: client.jwks as ClientsFileEntry['jwks'] } : {}),
    ...(client.federated !== undefined ? { federated: client.federated } : {})
  }
}

/** The file's fields whose values differ between two entries, in the schema's order: what a plan or an audit line names (never a value). */
export function changedFields (was: ClientsFileEntry, wanted: ClientsFileEntry): string[] {
  const before = was as Record<string, unknown>
  const after = wanted as Record<string, unknown>
  return FIELDS.filter((field) => JSON.stringify(before[field]) !== JSON.stringify(after[field]))
}

/** What an apply does: each client created, changed (with the fields that change), removed or unchanged. */
export interface ClientsPlan {
  created: string[]
  changed: Array<{ clientId: string, fields: string[] }>
  removed: string[]
  unchanged: string[]
  /** The writes that carry the plan out. */
  writes: ClientWrites
}

export interface PlanOptions {
  /** Remove the clients the file manages that it no longer declares. */
  prune: boolean
  now: number
  /** The createdAt of the clients created (see registrationTime). */
  createdAt: number
}

/**
 * Reconciles the declared clients with those stored. A declared id held by a client the file does
 * not manage (one the CLI or the API created) is refused: the file never takes over another's client.
 */
export function planClients (declared: readonly DeclaredClient[], stored: readonly Client[], options: PlanOptions): ClientsPlan {
  const byId = new Map(stored.map((client) => [client.clientId, client]))
  const plan: ClientsPlan = { created: [], changed: [], removed: [], unchanged: [], writes: { put: [], remove: [] } }
  const declaredIds = new Set<string>()
  for (const { entry, at } of declared) {
    declaredIds.add(entry.id)
    const current = byId.get(entry.id)
    if (current === undefined) {
      plan.created.push(entry.id)
      plan.writes.put.push(clientOf(entry, options.createdAt, options.createdAt, undefined, MANAGED_BY_CLIENTS_FILE))
      continue
    }
    if (current.managedBy !== MANAGED_BY_CLIENTS_FILE) {
      throw new ClientsFileError(`${at}: clients: "${entry.id}" is a client the clients file does not manage (created by the CLI or the API): remove it first, or give the file's client another id`)
    }
    const fields = changedFields(entryOf(current, options.now), entry)
    if (fields.length === 0) {
      plan.unchanged.push(entry.id)
    } else {
      plan.changed.push({ clientId: entry.id, fields })
      plan.writes.put.push(clientOf(entry, current.createdAt, options.now, current, MANAGED_BY_CLIENTS_FILE))
    }
  }
  if (options.prune) {
    for (const client of stored) {
      if (client.managedBy === MANAGED_BY_CLIENTS_FILE && !declaredIds.has(client.clientId)) {
        plan.removed.push(client.clientId)
        plan.writes.remove.push(client.clientId)
      }
    }
  }
  return plan
}

export const planHasChanges = (plan: ClientsPlan) => plan.created.length + plan.changed.length + plan.removed.length > 0

/** The plan as lines for a person: `+` created, `~` changed (the fields, never a value), `-` removed, `=` unchanged. */
export function describePlan (plan: ClientsPlan): string[] {
  return [
    ...plan.created.map((id) => `+ ${id}`),
    ...plan.changed.map(({ clientId, fields }) => `~ ${clientId} (${fields.join(', ')})`),
    ...plan.removed.map((id) => `- ${id}`),
    ...plan.unchanged.map((id) => `= ${id}`),
    planHasChanges(plan)
      ? `${plan.created.length} to create, ${plan.changed.length} to change, ${plan.removed.length} to remove, ${plan.unchanged.length} unchanged`
      : `No changes (${plan.unchanged.length} unchanged)`
  ]
}

/**
 * Applies the declared clients to the store (or only plans, with `dryRun`), as `clients apply` and
 * CLIENTS_FILE's reconciliation do. `prune` removes the managed clients the file no longer declares.
 */
export async function applyClients (clients: ClientRepository, declared: readonly DeclaredClient[], options: { prune: boolean, dryRun: boolean }): Promise<ClientsPlan> {
  if (options.dryRun) return planClients(declared, await clients.list(), { prune: options.prune, now: Date.now(), createdAt: Date.now() })
  const createdAt = await registrationTime()
  return await clients.reconcile((stored) => planClients(declared, stored, { prune: options.prune, now: Date.now(), createdAt }))
}
