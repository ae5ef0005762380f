import type { Client } from '../clients/client.ts'
import { OAuthError } from '../http/oauth-errors.ts'
import { exchangeDepth, InvalidTokenError, type AccessTokens, type Actor, type ClientTokenClaims, type UserTokenClaims } from '../tokens/access-tokens.ts'
import { mayIntrospect } from './introspection.ts'

/** RFC 8693 §2.1's grant type. */
export const TOKEN_EXCHANGE_GRANT_TYPE = 'urn:ietf:params:oauth:grant-type:token-exchange'
const ACCESS_TOKEN = 'urn:ietf:params:oauth:token-type:access_token'
const JWT = 'urn:ietf:params:oauth:token-type:jwt'
/** RFC 8693 §3: every token of this service is both an access token and a JWT, so either names it. */
const TOKEN_TYPES = [ACCESS_TOKEN, JWT]

/** The parameters of an exchange (RFC 8693 §2.1); `resource` and `audience` may be repeated. */
export interface TokenExchangeRequest {
  subject_token?: string
  subject_token_type?: string
  actor_token?: string
  actor_token_type?: string
  requested_token_type?: string
  resource?: string[]
  audience?: string[]
  scope?: string
}

/** A live subject token, as verified; `may_act` (RFC 8693 §4.4) when it carries one. */
export type SubjectClaims = (UserTokenClaims | ClientTokenClaims) & { may_act?: unknown }

/** What an exchange decided: the target, the scopes and the end (Unix seconds). */
export interface ExchangeDecision {
  audience: string | string[]
  scope: string
  exp: number
}

export interface ExchangeSettings {
  /** TOKEN_TTL_SECONDS: the lifetime of a client's tokens when it has no `--ttl`. */
  defaultTtlSeconds: number
  /** JWT_AUDIENCE: never a target. */
  userAudience: string
  /** TOKEN_EXCHANGE_MAX_DEPTH. */
  maxDepth: number
  /** Unix seconds. */
  now: number
}

/** The resources a client may exchange for, or unauthorized_client when it has no exchange policy. */
export function exchangeAudiences (client: Client): string[] {
  if (client.exchangeAudiences === undefined || client.exchangeAudiences.length === 0) {
    throw new OAuthError(400, 'unauthorized_client', 'This client is not registered to exchange tokens (clients add --exchange-audience)')
  }
  return client.exchangeAudiences
}

function invalidRequest (description: string): OAuthError {
  return new OAuthError(400, 'invalid_request', description)
}

/** The token types named in the request, each one this service issues; the issued type echoes the requested one. */
export function issuedTokenType (request: TokenExchangeRequest): string {
  if (request.subject_token === undefined || request.subject_token_type === undefined) throw invalidRequest('subject_token and subject_token_type are required')
  if (!TOKEN_TYPES.includes(request.subject_token_type)) throw invalidRequest('subject_token_type must be urn:ietf:params:oauth:token-type:access_token or ...:jwt')
  if ((request.actor_token === undefined) !== (request.actor_token_type === undefined)) throw invalidRequest('actor_token and actor_token_type go together')
  if (request.actor_token_type !== undefined && !TOKEN_TYPES.includes(request.actor_token_type)) throw invalidRequest('actor_token_type must be urn:ietf:params:oauth:token-type:access_token or ...:jwt')
  if (request.requested_token_type !== undefined && !TOKEN_TYPES.includes(request.requested_token_type)) throw invalidRequest('requested_token_type must be urn:ietf:params:oauth:token-type:access_token or ...:jwt')
  return request.requested_token_type ?? ACCESS_TOKEN
}

/** A token of this service, live, or invalid_request as RFC 8693 §2.2.2 asks for a subject or actor token that is not. */
async function liveToken (accessTokens: AccessTokens, token: string, parameter: string): Promise<SubjectClaims> {
  try {
    return accessTokens.claimedKind(token) === 'client' ? await accessTokens.verify(token, 'client') : await accessTokens.verify(token, 'user')
  } catch (error) {
    if (error instanceof InvalidTokenError) throw invalidRequest(`${parameter} is invalid: ${error.message}`)
    throw error
  }
}

/**
 * The subject token of an exchange by `client`, when it may exchange it: a live token of this
 * service that the client may introspect (its own, or one for a resource it serves: JWT_AUDIENCE
 * for login tokens), whose `may_act`, if any, names the client. An actor token, when sent, must be a live token of the client itself: the actor is
 * always the authenticated client, never someone it names.
 */
export async function exchangeSubject (accessTokens: AccessTokens, client: Client, request: TokenExchangeRequest): Promise<SubjectClaims> {
  const subject = await liveToken(accessTokens, request.subject_token!, 'subject_token')
  if (!mayIntrospect(client, subject)) throw invalidRequest('subject_token is neither this client\'s nor for a resource it serves')
  const mayAct = subject.may_act as Partial<Actor> | undefined
  if (mayAct !== undefined && mayAct?.sub !== client.clientId) throw invalidRequest('subject_token\'s may_act does not name this client')
  if (request.actor_token !== undefined) {
    const actor = await liveToken(accessTokens, request.actor_token, 'actor_token')
    if (!('client_id' in actor) || actor.client_id !== client.clientId || actor.sub !== client.clientId) throw invalidRequest('actor_token must be a token of this client itself')
  }
  return subject
}

/**
 * The actors of a token, outermost first: the exchanging client, then those before it (for the
 * audit line). None for a token that was not exchanged.
 */
export function actorsOf (claims: SubjectClaims): string[] {
  const actors: string[] = []
  for (let actor = ('act' in claims ? claims.act : undefined); actor !== undefined; actor = actor.act) actors.push(actor.sub)
  return actors
}

/**
 * Only ever narrower (RFC 8693 §2.1, §5): one more actor within TOKEN_EXCHANGE_MAX_DEPTH; the target is one the client may exchange for (the
 * first by default; `resource` and `audience` together name it, several giving an `aud` list);
 * the scopes are at most the subject token's (a login token carries none: then the client's) and
 * at most the client's (all of those when none are asked for); the token ends no later than the
 * subject token, nor than the client's lifetime allows from `now` (Unix seconds).
 */
export function decideExchange (client: Client, subject: SubjectClaims, request: TokenExchangeRequest, settings: ExchangeSettings): ExchangeDecision {
  const allowedAudiences = exchangeAudiences(client)
  const depth = exchangeDepth(subject)
  if (depth + 1 > settings.maxDepth) throw invalidRequest(`subject_token has been exchanged ${depth} times, the most allowed (TOKEN_EXCHANGE_MAX_DEPTH)`)
  const targets = [...new Set([...request.resource ?? [], ...request.audience ?? []])]
  const audience = targets.length === 0 ? [allowedAudiences[0]] : targets
  if (audience.some((target) => !allowedAudiences.includes(target) || target === settings.userAudience)) {
    throw new OAuthError(400, 'invalid_target', 'resource or audience is not one this client may exchange tokens for')
  }

  const subjectScopes = 'scope' in subject ? subject.scope.split(' ') : client.scopes
  const allowedScopes = client.scopes.filter((scope) => subjectScopes.includes(scope))
  let scopes = allowedScopes
  if (request.scope !== undefined) {
    scopes = [...new Set(request.scope.split(' ').filter((scope) => scope !== ''))]
    if (scopes.length === 0) throw new OAuthError(400, 'invalid_scope', 'scope is empty; omit it to get every scope the exchange allows')
    const wider = scopes.find((scope) => !allowedScopes.includes(scope))
    if (wider !== undefined) throw new OAuthError(400, 'invalid_scope', `Scope ${wider.slice(0, 128)} is not both the subject token's and this client's`)
  }
  if (scopes.length === 0) throw new OAuthError(400, 'invalid_scope', 'The subject token and this client have no scope in common')

  const exp = Math.min(subject.exp, settings.now + (client.tokenTtlSeconds ?? settings.defaultTtlSeconds))
  if (exp <= settings.now) throw invalidRequest('subject_token is invalid: Token has expired')
  return { audience: audience.length === 1 ? audience[0] : audience, scope: scopes.join(' '), exp }
}
