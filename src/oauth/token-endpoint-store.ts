import type { Client } from '../clients/client.js'
import type { WindowAdmission, WindowLimit } from '../limits/rolling-window.js'

/** The client a request presents credentials for, and whether its IP may try to authenticate a client at all. */
export interface ClientLookup {
  client: Client | undefined
  /** The IP's failed client authentications, looked at, not counted. */
  failures: WindowAdmission
}

/**
 * What the token endpoint keeps besides the clients, all of it state that only shapes answers for
 * a while and expires by itself: failed client authentications per client IP, grants per client,
 * and the ids of client assertions already used. The limits are the caller's, as data both twins
 * apply alike; a grant counts only once its client is authenticated, in both.
 */
export interface TokenEndpointStore {
  /** The client's record beside the IP's failure window (not counted): one round trip to Redis. */
  lookUpClient (clientId: string, ip: string, failureLimit: WindowLimit): Promise<ClientLookup>
  /** Counts a failed client authentication from the IP. */
  recordFailure (ip: string, failureLimit: WindowLimit): Promise<void>
  /** Counts a grant to an authenticated client, unless it has had `grantLimit`'s fill (then waitMs > 0). */
  admitGrant (clientId: string, grantLimit: WindowLimit): Promise<WindowAdmission>
  /** Marks an assertion id used until `expiresAt` (Unix ms); false when it was already used. */
  claimAssertionId (clientId: string, jti: string, expiresAt: number): Promise<boolean>
}
