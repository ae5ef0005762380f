import type { Client } from '../clients/client.ts'
import type { WindowAdmission, WindowLimit } from '../limits/rolling-window.ts'

/** The client a request presents credentials for, and its address's failure window: waitMs > 0 when it has had its fill. */
export interface ClientLookup {
  client: Client | undefined
  failures: WindowAdmission
}

/** A grant's verdict: the address's failure window (as ClientLookup's) and the client's grant window. */
export interface GrantAdmission {
  failures: WindowAdmission
  grant: WindowAdmission
}

/**
 * What the token endpoint keeps besides the clients, all of it state that only shapes answers for
 * a while and expires by itself: failed client authentications per client address, grants per
 * client, and the ids of client assertions already used. The limits are the caller's, as data both
 * twins apply alike. A failure is recorded, and a success confirmed, each in one atomic step after
 * the credentials are checked, so concurrent attempts are decided in one serial order.
 */
export interface TokenEndpointStore {
  /** The client's record, beside a look at the address's failure window: one round trip to Redis. */
  lookUpClient (clientId: string, clientAddress: string, failureLimit: WindowLimit): Promise<ClientLookup>
  /** Records a failed authentication from the address unless its window is full (then waitMs > 0, nothing recorded). */
  recordFailure (clientAddress: string, failureLimit: WindowLimit): Promise<WindowAdmission>
  /** The address's failure window, recording nothing: waitMs > 0 when it is full. */
  peekFailures (clientAddress: string, failureLimit: WindowLimit): Promise<WindowAdmission>
  /**
   * Counts a grant to an authenticated client unless it has had `grantLimit`'s fill, beside a look
   * at the address's failure window (one round trip to Redis). When that window is full the grant
   * is not counted.
   */
  admitGrant (clientId: string, grantLimit: WindowLimit, clientAddress: string, failureLimit: WindowLimit): Promise<GrantAdmission>
  /** Marks an assertion id used until `expiresAt` (Unix ms); false when it was already used. */
  claimAssertionId (clientId: string, jti: string, expiresAt: number): Promise<boolean>
}
