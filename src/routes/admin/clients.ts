import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { Type } from '@sinclair/typebox'
import {
  ClientExistsError, InvalidClientError, keyRotationViolation, ManagedClientError, refuseManaged, registrationTime, validateClient, type Client
} from '../../clients/client.ts'
import { changedFields, clientOf, entryOf } from '../../clients/clients-file.ts'
import { generateSecret, SecretRotationError, secretDigest, withGeneratedSecret, withRetiredSecrets, withRotatedSecret } from '../../clients/secrets.ts'
import { checkIfMatch, entityTag } from '../../http/etag.ts'
import { HttpError } from '../../http/errors.ts'
import {
  adminErrorResponses, ClientPage, ClientParams, ClientRequest, ClientResponse, ClientWithSecret, IfMatchHeaders, PageQuery, SecretRotationRequest
} from '../../schemas/admin.ts'
import { errorResponse } from '../../schemas/auth.ts'

export const DEFAULT_PAGE_LIMIT = 100

/** A client as the API shows it: the clients file's fields (secret digests, never a secret) and its record's. */
function clientView (client: Client, now = Date.now()) {
  return {
    ...entryOf(client, now),
    ...(client.managedBy !== undefined ? { managedBy: client.managedBy } : {}),
    createdAt: client.createdAt,
    updatedAt: client.updatedAt
  }
}

/** The refusals of the clients' rules, as the statuses the API answers them with. */
function asHttpError (error: unknown): unknown {
  if (error instanceof InvalidClientError) return new HttpError(400, error.message)
  if (error instanceof ClientExistsError) return new HttpError(409, error.message)
  if (error instanceof ManagedClientError || error instanceof SecretRotationError) return new HttpError(409, error.message)
  return error
}

const noSuchClient = (id: string) => new HttpError(404, `No such client "${id}"`)

/** /admin/v1/clients: the clients' records, their secrets shown once, with the clients file's field names. */
const adminClientsRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { JWT_AUDIENCE: userAudience, JWT_KEY_ROTATION_SECONDS: rotationSeconds } = app.config

  /** Every rule a client is stored under, as `clients add` and the clients file check them. */
  function validated (client: Client): Client {
    validateClient(client, userAudience)
    const rotationProblem = keyRotationViolation(client, rotationSeconds)
    if (rotationProblem !== undefined) throw new InvalidClientError(`ttlSeconds ${rotationProblem}`)
    return client
  }

  /** Applies `change` to the stored client atomically, after the managed refusal and the If-Match check against what is stored then. */
  async function changeClient (request: FastifyRequest, id: string, ifMatchRequired: boolean, change: (client: Client, now: number) => Client): Promise<{ before: Client, after: Client }> {
    let before: Client | undefined
    const after = await app.clients.update(id, (client) => {
      refuseManaged(client)
      checkIfMatch(request, entityTag(client), ifMatchRequired)
      before = client
      return change(client, Date.now())
    }).catch((error: unknown) => { throw asHttpError(error) })
    if (after === undefined) throw noSuchClient(id)
    return { before: before!, after }
  }

  const withTag = (reply: FastifyReply, client: Client) => reply.header('etag', entityTag(client))

  app.get('/clients', {
    onRequest: app.adminScope('admin:clients:read'),
    config: { admin: { resource: 'clients', operation: 'list' } },
    schema: {
      operationId: 'listClients',
      tags: ['clients'],
      summary: 'List clients, a page at a time',
      description: 'Clients in id order, at most `limit` of them, after `cursor` (the `next` of the page before). Paging is stable while clients come and go: each one that stays registered is seen exactly once. Never a secret.',
      security: [{ adminToken: ['admin:clients:read'] }],
      querystring: PageQuery,
      response: { 200: Type.Ref(ClientPage), 400: errorResponse('A malformed cursor or limit'), ...adminErrorResponses }
    }
  }, async (request) => {
    const now = Date.now()
    const page = await app.clients.page(request.query.cursor, Number(request.query.limit ?? DEFAULT_PAGE_LIMIT))
    return { clients: page.clients.map((client) => clientView(client, now)), ...(page.next !== undefined ? { next: page.next } : {}) }
  })

  app.get('/clients/:id', {
    onRequest: app.adminScope('admin:clients:read'),
    config: { admin: { resource: 'clients', operation: 'get' } },
    schema: {
      operationId: 'getClient',
      tags: ['clients'],
      summary: 'Read a client',
      description: 'The client with its ETag, for If-Match on a later change. Never a secret: secretDigests are the digests of the secrets in force.',
      security: [{ adminToken: ['admin:clients:read'] }],
      params: ClientParams,
      response: { 200: Type.Ref(ClientResponse), 400: errorResponse('A malformed client id'), 404: errorResponse('No such client'), ...adminErrorResponses }
    }
  }, async (request, reply) => {
    const client = await app.clients.find(request.params.id)
    if (client === undefined) throw noSuchClient(request.params.id)
    withTag(reply, client)
    return clientView(client)
  })

  app.post('/clients', {
    onRequest: app.adminScope('admin:clients:write'),
    config: { admin: { resource: 'clients', operation: 'create' } },
    schema: {
      operationId: 'createClient',
      tags: ['clients'],
      summary: 'Register a client',
      description: 'Registers a client from the clients file\'s fields. One that declares no way to authenticate (no secretDigests, jwksUri, jwks or federated) is a secret client: the service generates its secret and returns it in this response only; only its digest is stored. A client the API creates is not managed by the clients file.',
      security: [{ adminToken: ['admin:clients:write'] }],
      body: Type.Ref(ClientRequest),
      response: {
        201: Type.Ref(ClientWithSecret, { description: 'Registered; `secret` only when the service generated it' }),
        400: errorResponse('Invalid client: a field or a rule (JWT_AUDIENCE as an audience, more than one way to authenticate...)'),
        409: errorResponse('A client with this id exists'),
        413: errorResponse('The body is too large'),
        415: errorResponse('The body is not JSON'),
        ...adminErrorResponses
      }
    }
  }, async (request, reply) => {
    const now = Date.now()
    const { client, secret } = withGeneratedSecret(clientOf(request.body, now, now, undefined, undefined), now)
    try {
      validated(client)
    } catch (error) {
      throw asHttpError(error)
    }
    // Stamped once everything is checked, as it is stored: see registrationTime.
    const createdAt = await registrationTime()
    const stored = { ...client, createdAt, updatedAt: createdAt }
    await app.clients.create(stored).catch((error: unknown) => { throw asHttpError(error) })
    app.auditAdminChange(request, stored.clientId, Object.keys(request.body))
    withTag(reply, stored).header('location', `/admin/v1/clients/${stored.clientId}`).code(201)
    return { ...clientView(stored), ...(secret !== undefined ? { secret } : {}) }
  })

  app.put('/clients/:id', {
    onRequest: app.adminScope('admin:clients:write'),
    config: { admin: { resource: 'clients', operation: 'replace' } },
    schema: {
      operationId: 'replaceClient',
      tags: ['clients'],
      summary: 'Replace a client',
      description: 'Replaces every field of the client with the body\'s (its `id` the path\'s), keeping its registration time, so its tokens stay valid. If-Match is required: the ETag of the client as last read. A secret client keeps the secrets whose digests the body names.',
      security: [{ adminToken: ['admin:clients:write'] }],
      params: ClientParams,
      headers: IfMatchHeaders(true),
      body: Type.Ref(ClientRequest),
      response: {
        200: Type.Ref(ClientResponse, { description: 'Replaced, with its new ETag' }),
        400: errorResponse('Invalid client, or an id that is not the path\'s'),
        404: errorResponse('No such client'),
        409: errorResponse('The client is managed by the clients file'),
        412: errorResponse('If-Match does not match: the client changed since it was read'),
        413: errorResponse('The body is too large'),
        415: errorResponse('The body is not JSON'),
        428: errorResponse('If-Match is missing'),
        ...adminErrorResponses
      }
    }
  }, async (request, reply) => {
    const { id } = request.params
    if (request.body.id !== id) throw new HttpError(400, `The body's id "${request.body.id}" is not the path's "${id}"`)
    const { before, after } = await changeClient(request, id, true, (client, now) => {
      try {
        return validated(clientOf(request.body, client.createdAt, now, client, undefined))
      } catch (error) {
        throw asHttpError(error)
      }
    })
    app.auditAdminChange(request, id, changedFields(entryOf(before, after.updatedAt), entryOf(after, after.updatedAt)))
    withTag(reply, after)
    return clientView(after)
  })

  app.delete('/clients/:id', {
    onRequest: app.adminScope('admin:clients:write'),
    config: { admin: { resource: 'clients', operation: 'delete' } },
    schema: {
      operationId: 'deleteClient',
      tags: ['clients'],
      summary: 'Remove a client',
      description: 'Removes the client: its tokens are refused at once by every replica (introspection answers inactive). If-Match is required.',
      security: [{ adminToken: ['admin:clients:write'] }],
      params: ClientParams,
      headers: IfMatchHeaders(true),
      response: {
        204: Type.Null({ description: 'Removed' }),
        400: errorResponse('A malformed client id'),
        404: errorResponse('No such client'),
        409: errorResponse('The client is managed by the clients file'),
        412: errorResponse('If-Match does not match: the client changed since it was read'),
        428: errorResponse('If-Match is missing'),
        ...adminErrorResponses
      }
    }
  }, async (request, reply) => {
    const { id } = request.params
    const client = await app.clients.find(id)
    if (client === undefined) throw noSuchClient(id)
    try {
      refuseManaged(client)
    } catch (error) {
      throw asHttpError(error)
    }
    checkIfMatch(request, entityTag(client), true)
    if (!await app.clients.remove(id)) throw noSuchClient(id)
    app.auditAdminChange(request, id)
    return await reply.code(204).send(null)
  })

  app.post('/clients/:id/rotate-secret', {
    onRequest: app.adminScope('admin:clients:write'),
    config: { admin: { resource: 'clients', operation: 'rotate_secret' } },
    schema: {
      operationId: 'rotateClientSecret',
      tags: ['clients'],
      summary: 'Give a secret client a new secret',
      description: 'Generates a new secret and returns it in this response only. The secret in force keeps working for `oldSecretExpiresInSeconds`, or until the client\'s secrets are retired. If-Match, when sent, must match.',
      security: [{ adminToken: ['admin:clients:write'] }],
      params: ClientParams,
      headers: IfMatchHeaders(false),
      body: Type.Ref(SecretRotationRequest),
      response: {
        200: Type.Ref(ClientWithSecret, { description: 'The new secret, and the client with its new ETag' }),
        400: errorResponse('A malformed body'),
        404: errorResponse('No such client'),
        409: errorResponse('The client is managed by the clients file, has no secret, or is already in a rotation'),
        412: errorResponse('If-Match does not match: the client changed since it was read'),
        415: errorResponse('The body is not JSON'),
        ...adminErrorResponses
      }
    }
  }, async (request, reply) => {
    const secret = generateSecret()
    const { after } = await changeClient(request, request.params.id, false, (client, now) => withRotatedSecret(client, secretDigest(secret), now, request.body.oldSecretExpiresInSeconds))
    app.auditAdminChange(request, after.clientId, ['secretDigests'])
    withTag(reply, after)
    return { ...clientView(after), secret }
  })

  app.post('/clients/:id/retire-secret', {
    onRequest: app.adminScope('admin:clients:write'),
    config: { admin: { resource: 'clients', operation: 'retire_secret' } },
    schema: {
      operationId: 'retireClientSecrets',
      tags: ['clients'],
      summary: 'Keep only a client\'s newest secret',
      description: 'Ends a rotation: the older secret stops working at once. If-Match, when sent, must match.',
      security: [{ adminToken: ['admin:clients:write'] }],
      params: ClientParams,
      headers: IfMatchHeaders(false),
      response: {
        200: Type.Ref(ClientResponse, { description: 'The client with its new ETag' }),
        400: errorResponse('A malformed client id'),
        404: errorResponse('No such client'),
        409: errorResponse('The client is managed by the clients file, or has no older secret'),
        412: errorResponse('If-Match does not match: the client changed since it was read'),
        ...adminErrorResponses
      }
    }
  }, async (request, reply) => {
    const { after } = await changeClient(request, request.params.id, false, (client, now) => withRetiredSecrets(client, now))
    app.auditAdminChange(request, after.clientId, ['secretDigests'])
    withTag(reply, after)
    return clientView(after)
  })
}

export default adminClientsRoutes
