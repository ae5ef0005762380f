import fastifySwagger from '@fastify/swagger'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify'
import { randomUUID } from 'node:crypto'
import { adminAudience, readSettingFile } from '../config.ts'
import { bearerChallenge, bearerToken, insufficientScope } from '../http/bearer.ts'
import { useMessageErrors } from '../http/errors.ts'
import { schemaOptions } from '../http/schema-compilers.ts'
import adminClientsRoutes from '../routes/admin/clients.ts'
import adminKeysRoutes from '../routes/admin/keys.ts'
import adminUsersRoutes from '../routes/admin/users.ts'
import { adminSchemas, type AdminScope } from '../schemas/admin.ts'
import { openApiOptions } from '../schemas/openapi.ts'
import { InvalidTokenError, type ClientTokenClaims } from '../tokens/access-tokens.ts'
import { readKeyFile } from '../tokens/keys.ts'

/** What an admin route is, for its metric and its audit line. */
export interface AdminOperation {
  resource: 'clients' | 'users' | 'keys'
  operation: string
}

declare module 'fastify' {
  interface FastifyInstance {
    /**
     * onRequest step of every admin route: a Bearer client token of this service, verified by the
     * one rule set (kind, signature, claims, revocation, the client still registered), for
     * ADMIN_AUDIENCE, with `scope`. Sets request.adminCaller, or answers 401 or 403 with the RFC
     * 6750 challenge.
     */
    adminScope (scope: AdminScope): (request: FastifyRequest) => Promise<void>
    /** The audit line of one change: who (the token's client), the resource, the operation, the record, the fields changed (names, never values). */
    auditAdminChange (request: FastifyRequest, target: string, fields?: string[]): void
  }
  interface FastifyRequest {
    adminCaller: ClientTokenClaims | null
  }
  interface FastifyContextConfig {
    admin?: AdminOperation
  }
}

/** The outcome label of an operation's metric, by the status it was answered with. */
const outcome = (statusCode: number) => statusCode < 400 ? 'done' : statusCode < 500 ? 'refused' : 'failed'

/**
 * The admin API (/admin/v1/) as an app of its own, for its own listener (ADMIN_PORT, which no
 * ingress routes to), on the service's stores, tokens, password hasher, signing keys, metrics and
 * logger: nothing opens twice, and its operations are counted on the service's /metrics.
 */
export async function buildAdminApp (service: FastifyInstance): Promise<FastifyInstance> {
  const { config } = service
  const app = Fastify({
    loggerInstance: service.log.child({ listener: 'admin' }),
    https: config.TLS_CERT_FILE !== undefined && config.TLS_KEY_FILE !== undefined
      ? { cert: await readSettingFile('TLS_CERT_FILE', config.TLS_CERT_FILE), key: await readKeyFile('TLS_KEY_FILE', config.TLS_KEY_FILE) }
      : null,
    genReqId: () => randomUUID(),
    connectionTimeout: 10_000,
    requestTimeout: 10_000,
    keepAliveTimeout: 5_000,
    ...schemaOptions
  }).withTypeProvider<TypeBoxTypeProvider>()
  app.removeContentTypeParser('text/plain')
  // The service's own, as its routes know them.
  app.decorate('config', config)
  app.decorate('metrics', service.metrics)
  app.decorate('users', service.users)
  app.decorate('passwords', service.passwords)
  app.decorate('clients', service.clients)
  app.decorate('accessTokens', service.accessTokens)
  app.decorate('signingKeys', service.signingKeys)
  useMessageErrors(app)

  const audience = adminAudience(config)
  app.decorateRequest('adminCaller', null)
  app.decorate('adminScope', (scope: AdminScope) => async function requireScope (request: FastifyRequest) {
    const token = bearerToken(request)
    let claims: ClientTokenClaims
    try {
      if (service.accessTokens.claimedKind(token) !== 'client') throw new InvalidTokenError('A login token does not open the admin API: use a client\'s token from /oauth2/token')
      claims = await service.accessTokens.verify(token, 'client')
    } catch (error) {
      throw error instanceof InvalidTokenError ? bearerChallenge(error.message, 'invalid_token') : error
    }
    if (![claims.aud].flat().includes(audience)) throw bearerChallenge(`Token is not for the admin API: its aud must include ${audience} (ADMIN_AUDIENCE)`, 'invalid_token')
    if (!claims.scope.split(' ').includes(scope)) throw insufficientScope(scope)
    request.adminCaller = claims
  })
  app.decorate('auditAdminChange', function auditAdminChange (request: FastifyRequest, target: string, fields?: string[]) {
    const { resource, operation } = request.routeOptions.config.admin as AdminOperation
    request.log.info({ audit: 'admin', actor: request.adminCaller?.client_id, resource, operation, target, ...(fields !== undefined ? { fields } : {}) }, `admin ${resource} ${operation}`)
  })

  app.addHook('onSend', async (_request, reply) => {
    // Bodies may hold a secret shown once: no cache keeps a copy.
    void reply.header('cache-control', 'no-store')
  })
  app.addHook('onResponse', async (request, reply) => {
    const operation = request.routeOptions.config.admin
    if (operation !== undefined) service.metrics.adminOperations.inc({ ...operation, outcome: outcome(reply.statusCode) })
  })

  for (const schema of adminSchemas) app.addSchema(schema)
  await app.register(fastifySwagger, openApiOptions({
    title: 'Auth service admin API',
    description: 'Clients, users and signing keys of the auth service, on its own listener (ADMIN_PORT). Every operation takes a Bearer access token of the service itself, issued to a client for ADMIN_AUDIENCE with the scope the operation names.',
    server: { url: '/', description: 'The admin listener that serves this API' },
    securitySchemes: {
      adminToken: {
        type: 'oauth2',
        description: 'A client credentials token from the service\'s /oauth2/token, for ADMIN_AUDIENCE (resource or audience parameter), with the admin scopes the operations name',
        flows: {
          clientCredentials: {
            tokenUrl: '/oauth2/token',
            scopes: {
              'admin:clients:read': 'List and read clients',
              'admin:clients:write': 'Create, replace and delete clients; rotate and retire their secrets',
              'admin:users:read': 'List and read accounts',
              'admin:users:write': 'Create, change, disable, enable and delete accounts',
              'admin:keys:read': 'List the signing keys',
              'admin:keys:write': 'Revoke a managed signing key'
            }
          }
        }
      }
    },
    tags: [
      { name: 'clients', description: 'OAuth clients (the clients file\'s fields)' },
      { name: 'users', description: 'Accounts' },
      { name: 'keys', description: 'Signing keys' }
    ]
  }))

  await app.register(adminClientsRoutes, { prefix: '/admin/v1' })
  await app.register(adminUsersRoutes, { prefix: '/admin/v1' })
  await app.register(adminKeysRoutes, { prefix: '/admin/v1' })
  return app
}
