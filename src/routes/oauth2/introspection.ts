import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import { useOAuthErrors } from '../../http/oauth-errors.ts'
import { acceptFormBodies, FORM_BODY_LIMIT_BYTES } from '../../http/form-body.ts'
import { introspect, revokeOwnToken } from '../../oauth/introspection.ts'
import { IntrospectionRequest, IntrospectionResponse, oauthCommonErrorResponses, RevocationRequest } from '../../schemas/oauth.ts'

const CLIENT_AUTHENTICATION = 'The caller authenticates as a client, as at the token endpoint (Basic, client_secret_post or a client assertion); ' +
  'its failures count toward the same per-IP limit.'

/** POST /oauth2/introspect (RFC 7662) and POST /oauth2/revoke (RFC 7009): authenticate the client (oauth.authenticateClient), then ask the tokens. */
const oauthIntrospectionRoutes: FastifyPluginAsyncTypebox = async (app) => {
  acceptFormBodies(app)
  useOAuthErrors(app)
  // Basic, or (the empty requirement) credentials in the form body, which OpenAPI cannot name.
  const security: Array<Record<string, string[]>> = [{ clientSecretBasic: [] }, {}]

  app.post('/oauth2/introspect', {
    bodyLimit: FORM_BODY_LIMIT_BYTES,
    preHandler: app.oauth.authenticateClient,
    schema: {
      operationId: 'introspect',
      tags: ['oauth'],
      summary: 'Tell whether a token is active, and its claims',
      description: `RFC 7662 token introspection. ${CLIENT_AUTHENTICATION} A client introspects its own tokens and tokens for ` +
        'a resource it is registered to serve (`clients add --serves`; JWT_AUDIENCE for login tokens). Expired, revoked, ' +
        'malformed and foreign tokens, tokens of a removed client, and any other client\'s, are { "active": false }; ' +
        'an active token comes with its claims.',
      security,
      consumes: ['application/x-www-form-urlencoded'],
      body: Type.Ref(IntrospectionRequest),
      response: { 200: Type.Ref(IntrospectionResponse, { description: 'The token\'s state' }), ...oauthCommonErrorResponses }
    }
  }, async (request) => {
    const form = request.body as IntrospectionRequest
    return await introspect(app.accessTokens, request.client!, form.token)
  })

  app.post('/oauth2/revoke', {
    bodyLimit: FORM_BODY_LIMIT_BYTES,
    preHandler: app.oauth.authenticateClient,
    schema: {
      operationId: 'revoke',
      tags: ['oauth'],
      summary: 'Revoke one of the calling client\'s access tokens',
      description: `RFC 7009 token revocation. ${CLIENT_AUTHENTICATION} The token is refused by every replica at once and ` +
        'introspection reports it inactive. Revoking another client\'s token, or an unknown one, changes nothing and is also a 200.',
      security,
      consumes: ['application/x-www-form-urlencoded'],
      body: Type.Ref(RevocationRequest),
      response: { 200: Type.Null({ description: 'Revoked, or nothing to revoke (empty body)' }), ...oauthCommonErrorResponses }
    }
  }, async (request, reply) => {
    const form = request.body as RevocationRequest
    await revokeOwnToken(app.accessTokens, request.client!.clientId, form.token)
    // No body (RFC 7009 §2.2); the type provider wants the schema's null, which would be sent as "null".
    return await reply.code(200).send(undefined as unknown as null)
  })
}

export default oauthIntrospectionRoutes
