import { Type, type Static } from '@sinclair/typebox'
import { ErrorResponse, LoginRequest, errorResponse } from './auth.ts'
import { ClientsFileEntry } from './clients-file.ts'

/**
 * The admin API's schemas (/admin/v1/), from which openapi/admin.json is generated. A client's
 * fields are the clients file's (ClientsFileEntry): one definition for the file, its JSON Schema
 * and the API.
 */

export const ADMIN_SCOPES = ['admin:clients:read', 'admin:clients:write', 'admin:users:read', 'admin:users:write', 'admin:keys:read', 'admin:keys:write'] as const
export type AdminScope = typeof ADMIN_SCOPES[number]

/** A client as created or replaced: the clients file's fields. */
export const ClientRequest = Type.Object(ClientsFileEntry.properties, {
  $id: 'ClientRequest',
  additionalProperties: false,
  description: 'A client, with the clients file\'s fields. It authenticates in exactly one way: secretDigests, jwksUri, jwks or federated; with none of them it is a secret client and the service generates its secret.',
  examples: [{ id: 'orders', scopes: ['orders:read'], audiences: ['https://orders.internal'], ttlSeconds: 900 }]
})
export type ClientRequest = Static<typeof ClientRequest>

/** What a stored client's record holds besides the file's fields, read-only. */
const clientRecordFields = {
  managedBy: Type.Optional(Type.Literal('clients-file', { description: 'Set when the clients file manages the client: the API refuses to change it (409)' })),
  createdAt: Type.Integer({ description: 'When it was registered (Unix ms): its tokens are those issued since' }),
  updatedAt: Type.Integer({ description: 'When it last changed (Unix ms)' })
}

export const ClientResponse = Type.Object({ ...ClientsFileEntry.properties, ...clientRecordFields }, {
  $id: 'Client',
  additionalProperties: false,
  description: 'A registered client: the clients file\'s fields (secretDigests: the digests of the secrets in force, never a secret) and its record\'s. Its ETag header is the tag If-Match takes.'
})

export const ClientWithSecret = Type.Object({
  ...ClientsFileEntry.properties,
  ...clientRecordFields,
  secret: Type.Optional(Type.String({ description: 'The new secret, shown in this response only: it is stored as its digest' }))
}, {
  $id: 'ClientWithSecret',
  additionalProperties: false,
  description: 'A client just created or given a new secret, with that secret when the service generated one. No later response shows it again.'
})

export const ClientPage = Type.Object({
  clients: Type.Array(Type.Ref(ClientResponse)),
  next: Type.Optional(Type.String({ description: 'The cursor of the next page; absent on the last' }))
}, { $id: 'ClientPage', additionalProperties: false, description: 'Clients in id order' })

export const SecretRotationRequest = Type.Object({
  oldSecretExpiresInSeconds: Type.Optional(Type.Integer({ minimum: 0, maximum: 31536000, description: 'How long the secret in force keeps working; absent: until its secrets are retired' }))
}, { $id: 'SecretRotationRequest', additionalProperties: false })

export const UserResponse = Type.Object({
  username: Type.String({ description: 'The canonical username' }),
  disabled: Type.Boolean({ description: 'A disabled account cannot log in, and its tokens are refused' }),
  createdAt: Type.Integer({ description: 'When it was created (Unix ms)' }),
  updatedAt: Type.Integer({ description: 'When it last changed (Unix ms)' })
}, { $id: 'User', additionalProperties: false, description: 'An account, never its password or hash. Its ETag header is the tag If-Match takes.' })

export const UserPage = Type.Object({
  users: Type.Array(Type.Ref(UserResponse)),
  next: Type.Optional(Type.String({ description: 'The cursor of the next page; absent on the last' }))
}, { $id: 'UserPage', additionalProperties: false, description: 'Accounts in username order' })

export const UserRequest = Type.Object({
  username: LoginRequest.properties.username,
  password: Type.String({ ...LoginRequest.properties.password, description: 'Its password, held to the password policy' })
}, { $id: 'UserRequest', additionalProperties: false, examples: [{ username: 'john.doe', password: 'correct horse battery staple' }] })

export const PasswordRequest = Type.Object({
  password: Type.String({ ...LoginRequest.properties.password, description: 'The new password, held to the password policy' })
}, { $id: 'PasswordRequest', additionalProperties: false })

export const SigningKeyResponse = Type.Object({
  kid: Type.String({ description: 'Its key id, the `kid` of its tokens and of its JWKS entry' }),
  alg: Type.String({ description: 'Its JWS algorithm' }),
  state: Type.Union([Type.Literal('next'), Type.Literal('current'), Type.Literal('retired')], { description: 'next: published, signing from its time on; current: signing; retired: published, signing nothing (a key file of JWT_VERIFY_KEY_FILES too)' })
}, { $id: 'SigningKey', additionalProperties: false })

export const SigningKeyList = Type.Object({
  managed: Type.Boolean({ description: 'Whether the service manages its keys (JWT_KEY_ROTATION_SECONDS): only managed keys can be revoked here' }),
  keys: Type.Array(Type.Ref(SigningKeyResponse))
}, { $id: 'SigningKeyList', additionalProperties: false, description: 'Every published signing key' })

/** `?cursor=&limit=`: query strings are not coerced (ajv coerceTypes is off), so the limit is a numeral. */
export const PageQuery = Type.Object({
  cursor: Type.Optional(Type.String({ minLength: 1, maxLength: 1024, description: 'The `next` of the page before; absent: the first page' })),
  limit: Type.Optional(Type.String({ pattern: '^([1-9][0-9]?|[1-4][0-9]{2}|500)$', description: 'At most this many (1 to 500; 100 when absent)' }))
}, { additionalProperties: false })

export const ClientParams = Type.Object({ id: ClientsFileEntry.properties.id }, { additionalProperties: false })
export const UserParams = Type.Object({ username: LoginRequest.properties.username }, { additionalProperties: false })
export const KeyParams = Type.Object({ kid: Type.String({ minLength: 1, maxLength: 256, description: 'The key id' }) }, { additionalProperties: false })

export const IfMatchHeaders = (required: boolean) => Type.Object({
  'if-match': Type.Optional(Type.String({
    minLength: 1,
    maxLength: 256,
    description: required
      ? 'The ETag of the record as last read: required (428 without it), 412 when it changed since'
      : 'The ETag of the record as last read: optional, 412 when it changed since'
  }))
})

/** What every admin operation may answer besides its own statuses. */
export const adminErrorResponses = {
  401: errorResponse('Missing, malformed, expired or revoked token, a login token, or one not for the admin API (ADMIN_AUDIENCE); see WWW-Authenticate'),
  403: errorResponse('The token lacks the scope this operation needs (insufficient_scope); see WWW-Authenticate'),
  500: errorResponse('Unexpected error'),
  503: errorResponse('A dependency (Redis) is unavailable')
}

export const adminSchemas = [ErrorResponse, ClientRequest, ClientResponse, ClientWithSecret, ClientPage, SecretRotationRequest, UserResponse, UserPage, UserRequest, PasswordRequest, SigningKeyResponse, SigningKeyList]
