import { scanPatternLiteral } from './connection.ts'

/**
 * Every Redis key the service uses, built here only, each under REDIS_KEY_PREFIX. Keys that one
 * script or pipeline touches together share a hash tag (`{...}`), which keeps them in one Redis
 * Cluster slot; a key always touched alone needs none.
 */
export function redisKeys (prefix: string) {
  return {
    // State that must survive.
    /** A user's hash, by usernameKey. */
    user: (usernameKey: string) => `${prefix}user:${usernameKey}`,
    /** A SCAN pattern that matches every user's hash. */
    users: `${scanPatternLiteral(`${prefix}user:`)}*`,
    /**
     * Everything about one OAuth client, under the hash tag `{<clientId>}`: its record as JSON (must
     * survive), the rolling window of its grants and the ids of the assertions it has used (a
     * replay cache entry each, expiring with its assertion), which only shape answers for a while.
     */
    client: (clientId: string) => {
      const tag = `${prefix}client:{${clientId}}`
      return { record: tag, grants: `${tag}:grants`, assertionId: (jti: string) => `${tag}:assertion:${jti}` }
    },
    /**
     * Every client id, for listing and paging: a sorted set (all scores 0, so ordered by id), in
     * another slot than the records. `clientIdsBefore` is the plain set an earlier version kept,
     * moved into it once (RedisClientRepository).
     */
    clientIds: `${prefix}client-ids`,
    clientIdsBefore: `${prefix}clients`,
    /** Held (with an expiry) by the one replica or CLI reconciling clients with a clients file. */
    clientsReconcileLease: `${prefix}clients-reconcile-lease`,
    /** A revoked token id, until its token expires. */
    revocation: (jti: string) => `${prefix}revoked:${jti}`,
    /** The managed signing keys (JWT_KEY_ROTATION_SECONDS), all in one JSON string, their private keys sealed under the KEK. */
    signingKeys: `${prefix}signing-keys`,

    // State that only shapes answers for a while: each key expires by itself.
    /** An account's throttle records (failures, trusted addresses, attempts in flight), under the hash tag of its keyed hash. */
    accountThrottle: (account: string): [record: string, trustedAddresses: string, inFlight: string] => {
      const base = `${prefix}throttle:{${account}}`
      return [base, `${base}:trusted`, `${base}:in-flight`]
    },
    /** A client address's rolling window in the per-IP limit: of one route, or of the limiter's global scope. */
    rateLimit: (clientAddress: string, route?: string) => route === undefined ? `${prefix}rate-limit:${clientAddress}` : `${prefix}rate-limit:${route}:${clientAddress}`,
    /** One client address's (http/client-address.ts) failed client authentications, a rolling window. */
    clientAuthFailures: (clientAddress: string) => `${prefix}client-auth-failures:${clientAddress}`,
    /** What the readiness probe writes to see that Redis accepts writes. */
    writeProbe: `${prefix}health:write-probe`
  }
}

export type RedisKeys = ReturnType<typeof redisKeys>
