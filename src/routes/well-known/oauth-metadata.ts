import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import { ASSERTION_ALGORITHMS } from '../../clients/client.ts'
import { TOKEN_EXCHANGE_GRANT_TYPE } from '../../oauth/token-exchange.ts'
import { AuthorizationServerMetadata } from '../../schemas/oauth.ts'
import { JWKS_MAX_AGE_SECONDS } from '../../tokens/keys.ts'

const AUTH_METHODS = ['client_secret_basic', 'client_secret_post', 'private_key_jwt']

/**
 * GET /.well-known/oauth-authorization-server: RFC 8414 metadata, all a standard client needs to
 * discover. No scopes_supported (RECOMMENDED, not required): the document is anonymous, and every
 * client's scopes would map the internal services for anyone who asks. A client knows its own.
 */
const oauthMetadataRoute: FastifyPluginAsyncTypebox = async (app) => {
  const { endpoints } = app.oauth
  const metadata = {
    issuer: endpoints.issuer,
    token_endpoint: endpoints.token,
    jwks_uri: endpoints.jwks,
    introspection_endpoint: endpoints.introspection,
    revocation_endpoint: endpoints.revocation,
    grant_types_supported: ['client_credentials', TOKEN_EXCHANGE_GRANT_TYPE],
    // No authorization endpoint, so no response types (RFC 8414 requires the member).
    response_types_supported: [],
    token_endpoint_auth_methods_supported: AUTH_METHODS,
    token_endpoint_auth_signing_alg_values_supported: [...ASSERTION_ALGORITHMS],
    introspection_endpoint_auth_methods_supported: AUTH_METHODS,
    introspection_endpoint_auth_signing_alg_values_supported: [...ASSERTION_ALGORITHMS],
    revocation_endpoint_auth_methods_supported: AUTH_METHODS,
    revocation_endpoint_auth_signing_alg_values_supported: [...ASSERTION_ALGORITHMS]
  }

  app.get('/.well-known/oauth-authorization-server', {
    schema: {
      operationId: 'authorizationServerMetadata',
      tags: ['oauth'],
      summary: 'OAuth 2.0 authorization server metadata',
      description: 'RFC 8414 metadata: the issuer (JWT_ISSUER), the endpoints, the client authentication methods and ' +
        'assertion algorithms. No scopes_supported: no client\'s scopes are shown to anonymous callers. Cacheable for 5 minutes.',
      security: [],
      response: { 200: Type.Ref(AuthorizationServerMetadata, { description: 'The metadata' }) }
    }
  }, async (_request, reply) => {
    void reply.header('cache-control', `public, max-age=${JWKS_MAX_AGE_SECONDS}`)
    return metadata
  })
}

export default oauthMetadataRoute
