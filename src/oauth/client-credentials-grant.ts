import type { Client } from '../clients/client.ts'
import type { Config } from '../config.ts'
import { OAuthError, slowDown } from '../http/oauth-errors.ts'
import type { WindowLimit } from '../limits/rolling-window.ts'
import { tooManyFailures } from './client-authentication.ts'
import type { TokenEndpointStore } from './token-endpoint-store.ts'

/**
 * The scope of a grant (RFC 6749 §3.3): the requested space-separated scopes when every one is
 * the client's, all of the client's scopes when none is requested.
 */
export function grantedScope (client: Client, requested: string | undefined): string {
  if (requested === undefined) return client.scopes.join(' ')
  const scopes = [...new Set(requested.split(' ').filter((scope) => scope !== ''))]
  if (scopes.length === 0) throw new OAuthError(400, 'invalid_scope', 'scope is empty; omit it to get every scope of the client')
  const unknown = scopes.find((scope) => !client.scopes.includes(scope))
  if (unknown !== undefined) throw new OAuthError(400, 'invalid_scope', `Scope ${unknown.slice(0, 128)} is not granted to this client`)
  return scopes.join(' ')
}

/**
 * The audience of a grant (RFC 8707 §2): the requested resources when every one is the client's,
 * the client's first audience when none is requested. A token for several resources names them
 * all in its `aud`; one for a single resource names it as a string. Never `userAudience`
 * (JWT_AUDIENCE), which a client registered before that was refused may still hold: a client
 * token is no login token.
 */
export function grantedAudience (client: Client, resources: string[] | undefined, userAudience: string): string | string[] {
  const unique = resources === undefined ? [client.audiences[0]] : [...new Set(resources)]
  if (unique.some((resource) => !client.audiences.includes(resource))) throw new OAuthError(400, 'invalid_target', 'resource is not an audience this client may get tokens for')
  if (unique.includes(userAudience)) throw new OAuthError(400, 'invalid_target', 'No client gets tokens for the audience of login tokens (JWT_AUDIENCE)')
  return unique.length === 1 ? unique[0] : unique
}

/** The token endpoint's two limits as the settings give them: failed client authentications per address, grants per client. */
export function tokenEndpointLimits (config: Pick<Config, 'CLIENT_AUTH_FAILURE_MAX' | 'CLIENT_AUTH_FAILURE_WINDOW_MS' | 'TOKEN_GRANT_RATE_MAX' | 'TOKEN_GRANT_RATE_WINDOW_MS'>): { failures: WindowLimit, grants: WindowLimit } {
  return {
    failures: { max: config.CLIENT_AUTH_FAILURE_MAX, windowMs: config.CLIENT_AUTH_FAILURE_WINDOW_MS },
    grants: { max: config.TOKEN_GRANT_RATE_MAX, windowMs: config.TOKEN_GRANT_RATE_WINDOW_MS }
  }
}

/**
 * Tokens granted per client (TOKEN_GRANT_RATE_*), so one caller that fetches a token per request
 * cannot starve the rest. Only a grant about to be issued counts: a request that fails before
 * (its client not authenticated, a bad scope or resource) uses none of the client's budget.
 */
export class GrantLimit {
  private readonly store: TokenEndpointStore
  private readonly limit: WindowLimit
  private readonly failureLimit: WindowLimit

  constructor (store: TokenEndpointStore, limit: WindowLimit, failureLimit: WindowLimit) {
    this.store = store
    this.limit = limit
    this.failureLimit = failureLimit
  }

  /**
   * Counts a grant to the authenticated client, or throws slow_down (429) when it has had its fill,
   * or when its address's failures have (ClientAuthenticator.confirm, in the same round trip).
   */
  async admit (clientId: string, clientAddress: string): Promise<void> {
    const { failures, grant } = await this.store.admitGrant(clientId, this.limit, clientAddress, this.failureLimit)
    if (failures.waitMs > 0) throw tooManyFailures(failures.waitMs)
    if (grant.waitMs > 0) throw slowDown('Too many tokens granted to this client', grant.waitMs)
  }
}
