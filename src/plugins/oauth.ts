import type { FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import type { Client } from '../clients/client.js'
import type { ClientRepository } from '../clients/repository.js'
import { AssertionKeys } from '../oauth/assertion-keys.js'
import { ClientAuthenticator, presentedCredentials, type ClientAuthForm, type PresentedCredentials } from '../oauth/client-authentication.js'
import { OAuthError, slowDown } from '../http/oauth-errors.js'
import type { GrantAttempt, TokenEndpointStore } from '../oauth/token-endpoint-store.js'

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
    /** Registered OAuth clients: Redis or the embedded file, as config selects. */
    clients: ClientRepository
    oauth: {
      endpoints: OAuthEndpoints
      store: TokenEndpointStore
      authenticator: ClientAuthenticator
      /**
       * For the endpoints other than the token endpoint: the per-IP failure limit, then the
       * client's credentials. A failure is counted against the IP.
       */
      authenticateClient (request: FastifyRequest, form: ClientAuthForm): Promise<Client>
      /** Runs a client authentication: a 401 it throws is counted against the client's IP. */
      countingFailures<T> (request: FastifyRequest, authentication: Promise<T>): Promise<T>
      /** 429 when the client's IP has failed too often, before any credential is looked at. */
      checkFailureLimit (request: FastifyRequest): Promise<void>
      credentials (request: FastifyRequest, form: ClientAuthForm): PresentedCredentials
      /**
       * The token endpoint's round trip: the per-IP failure limit (429 before any credential is
       * checked) beside the client's record and its grant count.
       */
      openGrant (request: FastifyRequest, clientId: string): Promise<GrantAttempt>
    }
  }
}

/**
 * The OAuth 2.0 authorization server's state: clients (chosen like users), the token endpoint's
 * limits and replay cache (Redis in Redis mode, shared by replicas; in process otherwise), the
 * client assertion keys and client authentication.
 */
export default fp(async function oauthPlugin (app) {
  const config = app.config
  const clients = app.stores.durable.clients
  const store = app.stores.transient.tokenEndpoint
  const at = (path: string) => new URL(path, config.JWT_ISSUER).href
  const endpoints: OAuthEndpoints = {
    issuer: config.JWT_ISSUER,
    token: at('/oauth2/token'),
    introspection: at('/oauth2/introspect'),
    revocation: at('/oauth2/revoke'),
    jwks: at('/.well-known/jwks.json')
  }
  // An assertion's aud may name the issuer (openid-client sends it) or the token endpoint (RFC 7523).
  const authenticator = new ClientAuthenticator(store, new AssertionKeys(), [endpoints.issuer, at('/'), endpoints.token])

  const failureLimited = (waitMs: number) => slowDown('Too many failed client authentications from this address', waitMs)

  async function checkFailureLimit (request: FastifyRequest): Promise<void> {
    const { waitMs } = await store.failureAdmission(request.ip)
    if (waitMs > 0) throw failureLimited(waitMs)
  }

  async function countingFailures<T> (request: FastifyRequest, authentication: Promise<T>): Promise<T> {
    try {
      return await authentication
    } catch (error) {
      if (error instanceof OAuthError && error.statusCode === 401) await store.recordFailure(request.ip)
      throw error
    }
  }

  const credentials = (request: FastifyRequest, form: ClientAuthForm) => presentedCredentials(request.headers.authorization, form)

  app.decorate('clients', clients)
  app.decorate('oauth', {
    endpoints,
    store,
    authenticator,
    checkFailureLimit,
    countingFailures,
    credentials,
    async openGrant (request: FastifyRequest, clientId: string): Promise<GrantAttempt> {
      const grant = await store.openGrant(clientId, request.ip)
      if (grant.failures.waitMs > 0) {
        grant.cancel()
        throw failureLimited(grant.failures.waitMs)
      }
      return grant
    },
    async authenticateClient (request: FastifyRequest, form: ClientAuthForm): Promise<Client> {
      await checkFailureLimit(request)
      const presented = await countingFailures(request, Promise.resolve().then(() => credentials(request, form)))
      return await countingFailures(request, clients.find(presented.clientId).then((client) => authenticator.authenticate(client, presented)))
    }
  })
}, { name: 'oauth', dependencies: ['config', 'storage', 'errors'] })
