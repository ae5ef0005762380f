import type { FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import type { Client } from '../clients/client.ts'
import type { ClientRepository } from '../clients/repository.ts'
import { clientAddress } from '../http/client-address.ts'
import { AssertionKeys } from '../oauth/assertion-keys.ts'
import { ClientAuthenticator, presentedCredentials, type ClientAuthForm } from '../oauth/client-authentication.ts'
import { GrantLimit, tokenEndpointLimits } from '../oauth/client-credentials-grant.ts'

/** The absolute URLs the metadata publishes, all under JWT_ISSUER. */
export interface OAuthEndpoints {
  issuer: string
  token: string
  introspection: string
  revocation: string
  jwks: string
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Registered OAuth clients (from app.stores). */
    clients: ClientRepository
    oauth: {
      endpoints: OAuthEndpoints
      /**
       * preHandler of the endpoints a client authenticates at to be answered at once (introspection,
       * revocation): the credentials the request presents, the per-address failure limit, the proof,
       * and a last look at the limit. Sets request.client, or answers 400, 401 or 429.
       */
      authenticateClient (request: FastifyRequest): Promise<void>
      /**
       * preHandler of the token endpoint: authenticateClient without its last look, which
       * admitGrant makes in the grant's round trip, and confirmClient before any other answer.
       */
      proveClient (request: FastifyRequest): Promise<void>
      /** Answers 429 when the request's address has had its failures' fill: an answer past the proof would tell that the credentials were right. */
      confirmClient (request: FastifyRequest): Promise<void>
      /** Counts the grant to request.client (the grant limit), confirming it as confirmClient does. */
      admitGrant (request: FastifyRequest): Promise<void>
    }
  }
  interface FastifyRequest {
    /** The OAuth client the request authenticated as (oauth.authenticateClient). */
    client: Client | null
    /** The client id the request presented credentials for, authenticated or not: for the audit line. */
    clientId: string | undefined
  }
}

/**
 * The OAuth 2.0 authorization server: its endpoints' URLs, the one client authentication step
 * and the grant limit, on the clients and token endpoint stores of app.stores.
 */
export default fp(async function oauthPlugin (app) {
  const { config } = app
  const store = app.stores.transient.tokenEndpoint
  const at = (path: string) => new URL(path, config.JWT_ISSUER).href
  const endpoints: OAuthEndpoints = {
    issuer: config.JWT_ISSUER,
    token: at('/oauth2/token'),
    introspection: at('/oauth2/introspect'),
    revocation: at('/oauth2/revoke'),
    jwks: at('/.well-known/jwks.json')
  }
  // A key host's failures show in the log once per back-off, with why; the caller only gets a 503.
  const assertionKeys = new AssertionKeys({ onFetchFailure: (jwksUri, reason) => app.log.warn({ jwksUri, reason }, 'key set fetch failed') })
  const { failures, grants } = tokenEndpointLimits(config)
  const authenticator = new ClientAuthenticator(store, app.stores.durable.clients, assertionKeys, endpoints.issuer, {
    failures,
    maxAssertionLifetimeSeconds: config.CLIENT_ASSERTION_MAX_LIFETIME_SECONDS
  })
  const grantLimit = new GrantLimit(store, grants, failures)
  // The login limit's client key: every written form of an address, and an IPv6 /64, is one client.
  const addressOf = (request: FastifyRequest) => clientAddress(request.ip, config.RATE_LIMIT_IPV6_PREFIX)
  async function proveClient (request: FastifyRequest): Promise<void> {
    const presented = presentedCredentials(request.headers.authorization, request.body as ClientAuthForm)
    request.clientId = presented.clientId.slice(0, 128)
    request.client = await authenticator.authenticate(presented, addressOf(request))
  }

  app.decorate('clients', app.stores.durable.clients)
  app.decorateRequest('client', null)
  app.decorateRequest('clientId', undefined)
  app.decorate('oauth', {
    endpoints,
    async authenticateClient (request: FastifyRequest): Promise<void> {
      await proveClient(request)
      await authenticator.confirm(addressOf(request))
    },
    proveClient,
    confirmClient: (request: FastifyRequest) => authenticator.confirm(addressOf(request)),
    admitGrant: (request: FastifyRequest) => grantLimit.admit(request.client!.clientId, addressOf(request))
  })
}, { name: 'oauth', dependencies: ['config', 'storage', 'errors'] })
