import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import type { FastifyRequest } from 'fastify'
import { grantedAudience, grantedScope } from '../../oauth/client-credentials-grant.ts'
import { actorsOf, decideExchange, exchangeAudiences, exchangeSubject, issuedTokenType, TOKEN_EXCHANGE_GRANT_TYPE, type TokenExchangeRequest } from '../../oauth/token-exchange.ts'
import { OAuthError, useOAuthErrors } from '../../http/oauth-errors.ts'
import { acceptFormBodies, FORM_BODY_LIMIT_BYTES } from '../../http/form-body.ts'
import { oauthCommonErrorResponses, oauthErrorResponse, TokenRequest, TokenResponse } from '../../schemas/oauth.ts'

/** What the audit line calls the end of a token request. */
function grantOutcome (statusCode: number): string {
  if (statusCode === 200) return 'granted'
  if (statusCode === 401) return 'bad_client_credentials'
  if (statusCode === 429) return 'rate_limited'
  if (statusCode >= 500) return statusCode === 503 ? 'unavailable' : 'error'
  return 'invalid'
}

/** What the audit line tells of an exchange: the chain, never the tokens. */
interface ExchangeAudit {
  subject: string
  /** Outermost first: the exchanging client, then those that exchanged before it. */
  actors: string[]
  audience?: string | string[]
}

declare module 'fastify' {
  interface FastifyRequest {
    exchange: ExchangeAudit | null
  }
}

/**
 * POST /oauth2/token, top to bottom: form body -> client authentication (oauth.proveClient:
 * the per-address failure limit, then the proof) -> grant type, then the grant's steps. Client
 * credentials (RFC 6749 §4.4): scope -> audience (resource) -> the per-client grant limit beside a
 * last look at the failure limit (oauth.admitGrant; any other answer looks first) -> sign.
 * Token exchange (RFC 8693): the client's exchange policy -> token types -> the subject token (and
 * actor token) -> audience, scope and end -> the grant limit -> sign.
 */
const oauthTokenRoute: FastifyPluginAsyncTypebox = async (app) => {
  // RFC 8707 §2 and RFC 8693 §2.1: resource and audience may be sent more than once, for a token for all of them.
  acceptFormBodies(app, ['resource', 'audience'])
  useOAuthErrors(app)
  app.decorateRequest('exchange', null)
  const { oauth, accessTokens } = app
  const defaultTtlSeconds = app.config.TOKEN_TTL_SECONDS
  const userAudience = app.config.JWT_AUDIENCE
  const maxDepth = app.config.TOKEN_EXCHANGE_MAX_DEPTH

  async function clientCredentials (request: FastifyRequest, form: TokenRequest) {
    const client = request.client!
    const scope = grantedScope(client, form.scope)
    const audience = grantedAudience(client, form.resource, userAudience)
    await oauth.admitGrant(request)

    const ttlSeconds = client.tokenTtlSeconds ?? defaultTtlSeconds
    const { accessToken } = accessTokens.issueClientToken({ clientId: client.clientId, audience, scope, ttlSeconds })
    return { access_token: accessToken, token_type: 'Bearer' as const, expires_in: ttlSeconds, scope }
  }

  async function tokenExchange (request: FastifyRequest, form: TokenExchangeRequest) {
    const client = request.client!
    exchangeAudiences(client)
    const issuedType = issuedTokenType(form)
    const subject = await exchangeSubject(accessTokens, client, form)
    request.exchange = { subject: subject.sub, actors: [client.clientId, ...actorsOf(subject)] }
    const now = Math.floor(Date.now() / 1000)
    const { audience, scope, exp } = decideExchange(client, subject, form, { defaultTtlSeconds, userAudience, maxDepth, now })
    request.exchange.audience = audience
    await oauth.admitGrant(request)

    const { accessToken, claims } = accessTokens.issueExchangedToken({ subject, clientId: client.clientId, audience, scope, exp })
    return { access_token: accessToken, issued_token_type: issuedType, token_type: 'Bearer' as const, expires_in: claims.exp - claims.iat, scope }
  }

  app.post('/oauth2/token', {
    bodyLimit: FORM_BODY_LIMIT_BYTES,
    // Every token request, granted or not, is audited once (and not by the request log's pair of lines).
    onResponse: (request, reply, done) => {
      request.log.info({
        audit: 'token',
        outcome: grantOutcome(reply.statusCode),
        clientId: request.clientId,
        ...(request.exchange !== null ? { exchange: request.exchange } : {}),
        clientIp: request.ip,
        statusCode: reply.statusCode,
        responseTime: reply.elapsedTime
      }, 'token request')
      done()
    },
    preHandler: oauth.proveClient,
    schema: {
      operationId: 'token',
      tags: ['oauth'],
      summary: 'Get an access token (client credentials grant or token exchange)',
      description: 'RFC 6749 §4.4 client credentials grant, or RFC 8693 token exchange. The client authenticates with HTTP Basic (client_secret_basic), ' +
        'client_id and client_secret in the form (client_secret_post), or a client assertion (private_key_jwt, RFC 7523, ' +
        'or a workload identity token of its federated issuer). The token is an RFC 9068 JWT (typ at+jwt) for the requested ' +
        '`resource` (RFC 8707) with the requested `scope`. A token exchange trades a `subject_token` the client may introspect ' +
        'for a narrower one for a resource the client may exchange for (`clients add --exchange-audience`): its `sub` is the ' +
        'subject token\'s, its `act` names the client and, nested, the actors before it (at most TOKEN_EXCHANGE_MAX_DEPTH). ' +
        'Failed client authentications are limited per client IP (CLIENT_AUTH_FAILURE_MAX), grants and exchanges per client (TOKEN_GRANT_RATE_MAX).',
      // Basic, or (the empty requirement) credentials in the form body, which OpenAPI cannot name.
      security: [{ clientSecretBasic: [] }, {}],
      consumes: ['application/x-www-form-urlencoded'],
      body: Type.Ref(TokenRequest),
      response: {
        200: Type.Ref(TokenResponse, { description: 'Token granted (Cache-Control: no-store)' }),
        ...oauthCommonErrorResponses,
        400: oauthErrorResponse('invalid_request (also a subject or actor token that is invalid, expired, revoked, not this service\'s or not the client\'s to exchange), ' +
          'unauthorized_client (no exchange policy), unsupported_grant_type, invalid_scope or invalid_target')
      }
    }
  }, async function token (request, reply) {
    const form = request.body as TokenRequest
    let answer
    try {
      if (form.grant_type === 'client_credentials') {
        answer = await clientCredentials(request, form)
      } else if (form.grant_type === TOKEN_EXCHANGE_GRANT_TYPE) {
        answer = await tokenExchange(request, form)
      } else {
        throw new OAuthError(400, 'unsupported_grant_type', `grant_type must be client_credentials or ${TOKEN_EXCHANGE_GRANT_TYPE}`)
      }
    } catch (error) {
      // Any answer past the proof tells that the credentials were right, as a grant does: only while the address is within its failure limit.
      await oauth.confirmClient(request)
      throw error
    }
    void reply.header('cache-control', 'no-store').header('pragma', 'no-cache')
    return answer
  })
}

export default oauthTokenRoute
