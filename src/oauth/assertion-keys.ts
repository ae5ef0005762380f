import { createLocalJWKSet, errors as joseErrors, type JSONWebKeySet, type JWTVerifyGetKey } from 'jose'
import type { Client } from '../clients/client.ts'

/** How the key sets of jwks_uri clients and federated issuers are fetched, cached and given up on. */
export interface KeyFetchPolicy {
  /** The most bytes of a key set read: past them the connection is dropped, whatever Content-Length says. */
  maxBytes: number
  /** The most keys a set may hold. */
  maxKeys: number
  /** The whole exchange, from connecting to the last byte: a host trickling bytes does not extend it. */
  timeoutMs: number
  /** How long a fetched set is trusted before it is fetched again. */
  maxAgeMs: number
  /** An assertion naming a kid the set lacks fetches it again (a key rotation), at most once per this. */
  refetchCooldownMs: number
  /** After a failed fetch none is tried for this long, doubled with each failure in a row up to maxBackoffMs. */
  firstBackoffMs: number
  maxBackoffMs: number
  /** The clock, in ms since the epoch. */
  now: () => number
}

/**
 * A key set holds a client's current key and the next or previous one of a rotation, maybe for
 * several algorithms: a handful of keys, each at most about 3 KiB with its certificate (x5c).
 * 20 keys in 64 KiB leave room for that and bound what a key host can make the service hold and
 * search per assertion. A host that keeps failing is tried after 1, 2, 4, 8, 16 s, then every
 * 30 s, the unknown-kid cooldown: one fetch per 30 s per replica, however many requests come.
 */
export const KEY_FETCH_POLICY: KeyFetchPolicy = {
  maxBytes: 64 * 1024,
  maxKeys: 20,
  timeoutMs: 5_000,
  maxAgeMs: 10 * 60_000,
  refetchCooldownMs: 30_000,
  firstBackoffMs: 1_000,
  maxBackoffMs: 30_000,
  now: Date.now
}

/** A key set could not be had: the key host's problem (or the network's), not a failed authentication. */
export class KeySetUnavailable extends Error {
  /** @param retryAfterMs until the next fetch may be tried */
  readonly retryAfterMs: number

  constructor (retryAfterMs: number, reason: string) {
    super(reason)
    this.retryAfterMs = retryAfterMs
    this.name = 'KeySetUnavailable'
  }
}

/** Called once per failed fetch (so at most once per back-off and URL), with why it failed. */
export type FetchFailureListener = (url: string, reason: string) => void

/**
 * The keys that verify a client's assertions: its registered JWKS (parsed once per stored
 * record), or its jwks_uri or its federated issuer's JWKS (fetched under KEY_FETCH_POLICY; one
 * cache, one fetch in flight and one back-off per URL, shared by the clients that name it).
 * A verification that needs a set that cannot be fetched throws KeySetUnavailable.
 */
export class AssertionKeys {
  readonly #policy: KeyFetchPolicy
  readonly #onFetchFailure: FetchFailureListener
  readonly #registered = new WeakMap<Client, JWTVerifyGetKey>()
  readonly #remote = new Map<string, RemoteKeySet>()

  constructor ({ onFetchFailure = () => {}, ...policy }: Partial<KeyFetchPolicy> & { onFetchFailure?: FetchFailureListener } = {}) {
    this.#policy = { ...KEY_FETCH_POLICY, ...policy }
    this.#onFetchFailure = onFetchFailure
  }

  for (client: Client): JWTVerifyGetKey | undefined {
    const url = client.federated?.jwksUri ?? client.jwksUri
    if (url !== undefined) {
      let remote = this.#remote.get(url)
      if (remote === undefined) {
        remote = new RemoteKeySet(url, this.#policy, this.#onFetchFailure)
        this.#remote.set(url, remote)
      }
      return remote.getKey
    }
    if (client.jwks === undefined) return undefined
    let keys = this.#registered.get(client)
    if (keys === undefined) {
      keys = localKeySet(client.jwks)
      this.#registered.set(client, keys)
    }
    return keys
  }
}

function localKeySet (jwks: JSONWebKeySet): JWTVerifyGetKey {
  // An Ed25519 key signs only one way, named EdDSA or Ed25519: without its alg it matches both.
  return createLocalJWKSet({ keys: jwks.keys.map(({ alg, ...key }) => key.kty === 'OKP' ? key : { alg, ...key }) })
}

/** One URL's key set: the last one fetched, the fetch in flight, the back-off after failures. */
class RemoteKeySet {
  #keys: JWTVerifyGetKey | undefined
  #fetchedAt = -Infinity
  #fetching: Promise<void> | undefined
  #failures = 0
  #retryAt = -Infinity

  readonly url: string
  readonly policy: KeyFetchPolicy
  readonly onFetchFailure: FetchFailureListener

  constructor (url: string, policy: KeyFetchPolicy, onFetchFailure: FetchFailureListener) {
    this.url = url
    this.policy = policy
    this.onFetchFailure = onFetchFailure
  }

  readonly getKey: JWTVerifyGetKey = async (header, token) => {
    const age = this.policy.now() - this.#fetchedAt
    if (this.#keys !== undefined && age < this.policy.maxAgeMs) {
      try {
        return await this.#keys(header, token)
      } catch (error) {
        if (!(error instanceof joseErrors.JWKSNoMatchingKey) || age < this.policy.refetchCooldownMs) throw error
      }
    }
    await this.#refresh()
    return await this.#keys!(header, token)
  }

  /** Joins the fetch in flight, or starts one unless the back-off forbids it. */
  async #refresh (): Promise<void> {
    if (this.#fetching === undefined) {
      const waitMs = this.#retryAt - this.policy.now()
      if (waitMs > 0) throw new KeySetUnavailable(waitMs, 'backing off after a failed fetch')
      this.#fetching = this.#fetch().finally(() => { this.#fetching = undefined })
    }
    await this.#fetching
  }

  async #fetch (): Promise<void> {
    try {
      this.#keys = localKeySet(await fetchKeySet(this.url, this.policy))
    } catch (error) {
      const backoffMs = Math.min(this.policy.maxBackoffMs, this.policy.firstBackoffMs * 2 ** this.#failures)
      this.#failures++
      this.#retryAt = this.policy.now() + backoffMs
      const reason = failureReason(error, this.policy)
      this.onFetchFailure(this.url, reason)
      throw new KeySetUnavailable(backoffMs, reason)
    }
    this.#fetchedAt = this.policy.now()
    this.#failures = 0
  }
}

/** The key set at `url`, read within the policy's time and byte bounds; throws on anything else. */
async function fetchKeySet (url: string, { maxBytes, maxKeys, timeoutMs }: KeyFetchPolicy): Promise<JSONWebKeySet> {
  const abort = new AbortController()
  const signal = AbortSignal.any([abort.signal, AbortSignal.timeout(timeoutMs)])
  // A redirect is not followed: it could send the fetch to any host.
  const response = await fetch(url, { signal, redirect: 'manual', headers: { accept: 'application/jwk-set+json, application/json' } })
  if (response.status !== 200 || response.body === null) {
    abort.abort()
    throw new Error(`answered HTTP ${response.status}`)
  }
  const reader = response.body.getReader()
  const chunks: Uint8Array[] = []
  let size = 0
  for (let read = await reader.read(); !read.done; read = await reader.read()) {
    size += read.value.length
    if (size > maxBytes) {
      abort.abort()
      throw new Error(`sent more than ${maxBytes} bytes`)
    }
    chunks.push(read.value)
  }
  let jwks: unknown
  try {
    jwks = JSON.parse(Buffer.concat(chunks).toString('utf8'))
  } catch {
    throw new Error('sent something that is not JSON')
  }
  const keys = (jwks as { keys?: unknown } | null)?.keys
  if (!Array.isArray(keys) || !keys.every((key) => typeof key === 'object' && key !== null && !Array.isArray(key))) throw new Error('sent JSON that is not a key set')
  if (keys.length > maxKeys) throw new Error(`sent ${keys.length} keys, more than ${maxKeys}`)
  return jwks as JSONWebKeySet
}

function failureReason (error: unknown, { timeoutMs }: KeyFetchPolicy): string {
  const { name, message, cause } = error as Error & { cause?: { code?: string } }
  if (name === 'TimeoutError') return `no whole answer within ${timeoutMs} ms`
  return cause?.code ?? message
}
