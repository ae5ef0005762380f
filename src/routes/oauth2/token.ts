import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import { grantedAudience, grantedScope } from '../../oauth/client-credentials-grant.js'
import { OAuthError, useOAuthErrors } from '../../http/oauth-errors.js'
import { acceptFormBodies, FORM_BODY_LIMIT_BYTES } from '../../http/form-body.js'
import { oauthCommonErrorResponses, oauthErrorResponse, TokenRequest, TokenResponse } from '../../schemas/oauth.js'

/** What the audit line calls the end of a token request. */
function grantOutcome (statusCode: number): string {
  if (statusCode === 200) return 'granted'
  if (statusCode === 401) return 'bad_client_credentials'
  if (statusCode === 429) return 'rate_limited'
  if (statusCode >= 500) return statusCode === 503 ? 'unavailable' : 'error'
  return 'invalid'
}

/**
 * POST /oauth2/token, the client-credentials grant (RFC 6749 §4.4), top to bottom: form body ->
 * client authentication (oauth.authenticateClient: the per-address failure limit, then the proof) ->
 * grant type -> scope -> audience (resource) -> the per-client grant limit -> sign.
 */
const oauthTokenRoute: FastifyPluginAsyncTypebox = async (app) => {
  // RFC 8707 §2: resource may be sent more than once, for a token for all of them.
  acceptFormBodies(app, ['resource'])
  useOAuthErrors(app)
  const { oauth, accessTokens } = app
  const defaultTtlSeconds = app.config.TOKEN_TTL_SECONDS
  const userAudience = app.config.JWT_AUDIENCE

  app.post('/oauth2/token', {
    bodyLimit: FORM_BODY_LIMIT_BYTES,
    // Every token request, granted or not, is audited once (and not by the request log's pair of lines).
    onResponse: (request, reply, done) => {
      request.log.info({
        audit: 'token',
        outcome: grantOutcome(reply.statusCode),
        clientId: request.clientId,
        clientIp: request.ip,
        statusCode: reply.statusCode,
        responseTime: reply.elapsedTime
      }, 'token request')
      done()
    },
    preHandler: oauth.authenticateClient,
    schema: {
      operationId: 'token',
      tags: ['oauth'],
      summary: 'Get an access token (client credentials grant)',
      description: 'RFC 6749 §4.4 client credentials grant. The client authenticates with HTTP Basic (client_secret_basic), ' +
        'client_id and client_secret in the form (client_secret_post), or a client assertion (private_key_jwt, RFC 7523, ' +
        'or a workload identity token of its federated issuer). The token is an RFC 9068 JWT (typ at+jwt) for the requested ' +
        '`resource` (RFC 8707) with the requested `scope`. Failed client authentications are limited per client IP ' +
        '(CLIENT_AUTH_FAILURE_MAX), grants per client (TOKEN_GRANT_RATE_MAX).',
      // Basic, or (the empty requirement) credentials in the form body, which OpenAPI cannot name.
      security: [{ clientSecretBasic: [] }, {}],
      consumes: ['application/x-www-form-urlencoded'],
      body: Type.Ref(TokenRequest),
      response: {
        200: Type.Ref(TokenResponse, { description: 'Token granted (Cache-Control: no-store)' }),
        ...oauthCommonErrorResponses,
        400: oauthErrorResponse('invalid_request, unsupported_grant_type, invalid_scope or invalid_target')
      }
    }
  }, async function token (request, reply) {
    const form = request.body as TokenRequest
    const client = request.client!
    if (form.grant_type !== 'client_credentials') {
      throw new OAuthError(400, 'unsupported_grant_type', 'grant_type must be client_credentials')
    }
    const scope = grantedScope(client, form.scope)
    const audience = grantedAudience(client, form.resource, userAudience)
    await oauth.grantLimit.admit(client.clientId)

    const ttlSeconds = client.tokenTtlSeconds ?? defaultTtlSeconds
    const { accessToken } = accessTokens.issueClientToken({ clientId: client.clientId, audience, scope, ttlSeconds })
    void reply.header('cache-control', 'no-store').header('pragma', 'no-cache')
    return { access_token: accessToken, token_type: 'Bearer' as const, expires_in: ttlSeconds, scope }
  })
}

export default oauthTokenRoute
