import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import { ASSERTION_ALGORITHMS } from '../../clients/client.js'
import { dependencyErrorResponses } from '../../schemas/auth.js'
import { AuthorizationServerMetadata } from '../../schemas/oauth.js'
import { JWKS_MAX_AGE_SECONDS } from './jwks.js'

const SCOPES_CACHE_MS = 5000
const AUTH_METHODS = ['client_secret_basic', 'client_secret_post', 'private_key_jwt']

/** GET /.well-known/oauth-authorization-server: RFC 8414 metadata, all a standard client needs to discover. */
const oauthMetadataRoute: FastifyPluginAsyncTypebox = async (app) => {
  const { endpoints } = app.oauth
  const fixed = {
    issuer: endpoints.issuer,
    token_endpoint: endpoints.token,
    jwks_uri: endpoints.jwks,
    introspection_endpoint: endpoints.introspection,
    revocation_endpoint: endpoints.revocation,
    grant_types_supported: ['client_credentials'],
    // No authorization endpoint, so no response types (RFC 8414 requires the member).
    response_types_supported: [],
    token_endpoint_auth_methods_supported: AUTH_METHODS,
    token_endpoint_auth_signing_alg_values_supported: [...ASSERTION_ALGORITHMS],
    introspection_endpoint_auth_methods_supported: AUTH_METHODS,
    introspection_endpoint_auth_signing_alg_values_supported: [...ASSERTION_ALGORITHMS],
    revocation_endpoint_auth_methods_supported: AUTH_METHODS,
    revocation_endpoint_auth_signing_alg_values_supported: [...ASSERTION_ALGORITHMS]
  }

  // Every scope some client may be granted. Reading every client is not for each anonymous request:
  // the list is kept for a few seconds, far less than clients may cache the document.
  let scopes: { list: Promise<string[]>, until: number } | undefined
  function scopesSupported (): Promise<string[]> {
    const now = Date.now()
    if (scopes === undefined || scopes.until <= now) {
      const list = app.clients.list().then((clients) => [...new Set(clients.flatMap((client) => client.scopes))].sort())
      scopes = { list, until: now + SCOPES_CACHE_MS }
      list.catch(() => { scopes = undefined })
    }
    return scopes.list
  }

  app.get('/.well-known/oauth-authorization-server', {
    schema: {
      operationId: 'authorizationServerMetadata',
      tags: ['oauth'],
      summary: 'OAuth 2.0 authorization server metadata',
      description: 'RFC 8414 metadata: the issuer (JWT_ISSUER), the endpoints, the client authentication methods and ' +
        'assertion algorithms, and every scope some client may be granted. Cacheable for 5 minutes.',
      security: [],
      response: { 200: Type.Ref(AuthorizationServerMetadata, { description: 'The metadata' }), ...dependencyErrorResponses }
    }
  }, async (_request, reply) => {
    void reply.header('cache-control', `public, max-age=${JWKS_MAX_AGE_SECONDS}`)
    return { ...fixed, scopes_supported: await scopesSupported() }
  })
}

export default oauthMetadataRoute
