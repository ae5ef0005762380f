import { createLocalJWKSet, createRemoteJWKSet, type JWTVerifyGetKey } from 'jose'
import type { Client } from '../clients/client.js'

/** How long a fetched key set is trusted before it is fetched again (jose's default, stated). */
const JWKS_CACHE_MAX_AGE_MS = 10 * 60_000
/**
 * An assertion naming a kid the cached set lacks makes the set be fetched again at once (a key
 * rotation), but at most once per this period: unknown kids cannot make us hammer the key server.
 */
export const JWKS_REFETCH_COOLDOWN_MS = 30_000
const JWKS_FETCH_TIMEOUT_MS = 5_000

/**
 * The keys that verify a client's assertions: its registered JWKS (parsed once per stored
 * record), its jwks_uri or its federated issuer's JWKS (fetched, cached, refetched on an unknown
 * kid after a cooldown; one cache per URL, shared by the clients that name it).
 */
export class AssertionKeys {
  readonly #registered = new WeakMap<Client, JWTVerifyGetKey>()
  readonly #remote = new Map<string, JWTVerifyGetKey>()

  for (client: Client): JWTVerifyGetKey | undefined {
    const uri = client.federated?.jwksUri ?? client.jwksUri
    if (uri !== undefined) return this.#fetched(uri)
    if (client.jwks === undefined) return undefined
    let keys = this.#registered.get(client)
    if (keys === undefined) {
      // An Ed25519 key signs only one way, named EdDSA or Ed25519: without its alg it matches both.
      keys = createLocalJWKSet({ keys: client.jwks.keys.map(({ alg, ...key }) => key.kty === 'OKP' ? key : { alg, ...key }) })
      this.#registered.set(client, keys)
    }
    return keys
  }

  #fetched (uri: string): JWTVerifyGetKey {
    let keys = this.#remote.get(uri)
    if (keys === undefined) {
      keys = createRemoteJWKSet(new URL(uri), { cacheMaxAge: JWKS_CACHE_MAX_AGE_MS, cooldownDuration: JWKS_REFETCH_COOLDOWN_MS, timeoutDuration: JWKS_FETCH_TIMEOUT_MS })
      this.#remote.set(uri, keys)
    }
    return keys
  }
}
