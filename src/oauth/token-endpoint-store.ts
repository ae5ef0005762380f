import type { Client } from '../clients/client.js'
import type { WindowAdmission, WindowLimit } from '../limits/rolling-window.js'

/** A token request's client, looked up together with its grant being counted and its IP's failures. */
export interface GrantAttempt {
  /** Whether the request's IP may try to authenticate a client at all (looked at, not counted). */
  failures: WindowAdmission
  client: Client | undefined
  /** Counts the grant against the client's limit (if not counted already) and tells whether it may go ahead. */
  admit (): Promise<WindowAdmission>
  /** The request failed before admit(): a grant counted in advance is taken back. */
  cancel (): void
}

/**
 * What the token endpoint keeps besides the clients, all of it state that only shapes answers for
 * a while and expires by itself: failed client authentications per client IP, grants per client,
 * and the ids of client assertions already used. In Redis (shared by replicas) or in process.
 */
export interface TokenEndpointStore {
  /** Whether this IP may try to authenticate a client at all; looks without counting. */
  failureAdmission (ip: string): Promise<WindowAdmission>
  recordFailure (ip: string): Promise<void>
  /** The IP's failure admission, the client and, where one round trip can do it all, the grant counted against its limit. */
  openGrant (clientId: string, ip: string): Promise<GrantAttempt>
  /** Marks an assertion id used until `expiresAt` (Unix ms); false when it was already used. */
  claimAssertionId (clientId: string, jti: string, expiresAt: number): Promise<boolean>
}

export interface TokenEndpointLimits {
  failures: WindowLimit
  grants: WindowLimit
}
