import type { Client } from '../clients/client.js'
import type { WindowAdmission, WindowLimit } from '../limits/rolling-window.js'

/** At most `max` failed client authentications per client address in any rolling `windowMs`, the attempts in flight counted too. */
export interface FailureLimit extends WindowLimit {
  /** An admitted attempt that never ended (a replica died) stops counting as in flight after this. */
  inFlightMs: number
}

/**
 * Whether a client authentication from an address may go ahead: `admitted` (it is in flight until
 * ended), `wait` (the address has failed too often: retry in waitMs), or `busy`: together with the
 * attempts in flight it could pass the limit, so they must end first.
 */
export type FailureAdmission =
  | { outcome: 'admitted' }
  | { outcome: 'wait', waitMs: number }
  | { outcome: 'busy' }

/** The client a request presents credentials for, and whether its address may try to authenticate a client at all. */
export interface ClientLookup {
  client: Client | undefined
  admission: FailureAdmission
}

/**
 * What the token endpoint keeps besides the clients, all of it state that only shapes answers for
 * a while and expires by itself: failed client authentications per client address and those in
 * flight, grants per client, and the ids of client assertions already used. The limits are the
 * caller's, as data both twins apply alike; a grant counts only once its client is authenticated,
 * in both.
 */
export interface TokenEndpointStore {
  /** The client's record, beside admitting this authentication (`attemptId`) from the client address in one atomic step: one round trip to Redis. */
  lookUpClient (clientId: string, clientAddress: string, attemptId: string, failureLimit: FailureLimit): Promise<ClientLookup>
  /** Ends an admitted authentication: it is no longer in flight, and counts as a failure when `failed`. */
  endAttempt (clientAddress: string, attemptId: string, failed: boolean, failureLimit: FailureLimit): Promise<void>
  /** Counts a grant to an authenticated client, unless it has had `grantLimit`'s fill (then waitMs > 0). */
  admitGrant (clientId: string, grantLimit: WindowLimit): Promise<WindowAdmission>
  /** Marks an assertion id used until `expiresAt` (Unix ms); false when it was already used. */
  claimAssertionId (clientId: string, jti: string, expiresAt: number): Promise<boolean>
}
