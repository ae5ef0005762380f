import { Type, type Static } from '@sinclair/typebox'

/**
 * The OAuth endpoints' error body, RFC 6749 §5.2: what OAuth client libraries parse. Not the
 * `{ message }` of the /api/auth routes.
 */
export const OAuthErrorResponse = Type.Object(
  {
    error: Type.Union([
      Type.Literal('invalid_request'), Type.Literal('invalid_client'), Type.Literal('unauthorized_client'), Type.Literal('unsupported_grant_type'),
      Type.Literal('invalid_scope'), Type.Literal('invalid_target'), Type.Literal('unsupported_token_type'),
      Type.Literal('slow_down'), Type.Literal('temporarily_unavailable'), Type.Literal('server_error')
    ], { description: 'RFC 6749 §5.2 error code (invalid_target: RFC 8707; slow_down: too many requests, see Retry-After)' }),
    error_description: Type.String({ description: 'Human-readable explanation' })
  },
  {
    $id: 'OAuthErrorResponse',
    additionalProperties: false,
    examples: [{ error: 'invalid_client', error_description: 'Client authentication failed' }]
  }
)

export const oauthErrorResponse = (description: string) => Type.Ref(OAuthErrorResponse, { description })

/** What any OAuth endpoint may answer besides its own statuses. */
export const oauthCommonErrorResponses = {
  400: oauthErrorResponse('invalid_request: a missing, repeated or malformed parameter, or more than one client authentication method'),
  401: oauthErrorResponse('invalid_client: unknown client or failed client authentication, with the WWW-Authenticate: Basic challenge whichever method was used'),
  413: oauthErrorResponse('invalid_request: the body is too large'),
  415: oauthErrorResponse('invalid_request: the body is not application/x-www-form-urlencoded'),
  429: oauthErrorResponse('slow_down: too many failed client authentications from this address (or grants for this client); see Retry-After'),
  500: oauthErrorResponse('server_error: unexpected error'),
  503: oauthErrorResponse('temporarily_unavailable: a dependency (Redis, or the key set of the client) is unavailable')
}

/** Client authentication in the form body: client_secret_post or a client assertion (RFC 7523). */
const clientAuthParameters = {
  client_id: Type.Optional(Type.String({ minLength: 1, maxLength: 128, description: 'The client id (client_secret_post, or with a client assertion)' })),
  client_secret: Type.Optional(Type.String({ minLength: 1, maxLength: 512, description: 'client_secret_post: the client secret' })),
  client_assertion_type: Type.Optional(Type.String({ maxLength: 128, description: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer' })),
  client_assertion: Type.Optional(Type.String({ minLength: 1, maxLength: 8192, description: 'private_key_jwt or workload identity: a signed JWT' }))
}

const tokenTypeParameter = (description: string) => Type.Optional(Type.String({ maxLength: 128, description: `${description}: urn:ietf:params:oauth:token-type:access_token or urn:ietf:params:oauth:token-type:jwt` }))

export const TokenRequest = Type.Object(
  {
    grant_type: Type.String({ maxLength: 128, description: 'client_credentials, or urn:ietf:params:oauth:grant-type:token-exchange (RFC 8693)' }),
    scope: Type.Optional(Type.String({
      maxLength: 4096,
      description: 'Space-separated scopes; default: every scope of the client (token exchange: every scope both the subject token and the client have)'
    })),
    resource: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 512 }), {
      minItems: 1,
      description: 'RFC 8707: the audience of the token, repeated for a token for several resources (its aud then an array); ' +
        'default: the first audience of the client (token exchange: its first exchange audience)'
    })),
    audience: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 512 }), {
      minItems: 1,
      description: 'Token exchange (RFC 8693): a target by name, repeatable, counted with resource'
    })),
    subject_token: Type.Optional(Type.String({ maxLength: 8192, description: 'Token exchange: an access token of this service the client may introspect' })),
    subject_token_type: tokenTypeParameter('Token exchange, required with subject_token'),
    actor_token: Type.Optional(Type.String({ maxLength: 8192, description: 'Token exchange, optional: a token of the calling client itself' })),
    actor_token_type: tokenTypeParameter('Token exchange, required with actor_token'),
    requested_token_type: tokenTypeParameter('Token exchange, optional'),
    ...clientAuthParameters
  },
  // Unknown parameters are ignored (RFC 6749 §3.2).
  { $id: 'TokenRequest', additionalProperties: true, examples: [{ grant_type: 'client_credentials', scope: 'orders:read', resource: ['https://orders.internal'] }] }
)
export type TokenRequest = Static<typeof TokenRequest>

export const TokenResponse = Type.Object(
  {
    access_token: Type.String({ description: 'RFC 9068 JWT access token (typ at+jwt)' }),
    token_type: Type.Literal('Bearer'),
    expires_in: Type.Integer({ description: 'Seconds until the token expires' }),
    scope: Type.String({ description: 'The scopes granted, space-separated' }),
    issued_token_type: Type.Optional(Type.String({ description: 'Token exchange (RFC 8693 §2.2.1): the requested_token_type, by default urn:ietf:params:oauth:token-type:access_token' }))
  },
  { $id: 'TokenResponse', additionalProperties: false, examples: [{ access_token: 'eyJhbGc...', token_type: 'Bearer', expires_in: 900, scope: 'orders:read' }] }
)

export const IntrospectionRequest = Type.Object(
  {
    token: Type.String({ maxLength: 8192, description: 'The token to introspect' }),
    token_type_hint: Type.Optional(Type.String({ maxLength: 64, description: 'Ignored: only access tokens exist' })),
    ...clientAuthParameters
  },
  { $id: 'IntrospectionRequest', additionalProperties: true, examples: [{ token: 'eyJhbGc...' }] }
)
export type IntrospectionRequest = Static<typeof IntrospectionRequest>

export const IntrospectionResponse = Type.Object(
  {
    active: Type.Boolean({ description: 'false for anything expired, revoked, malformed, foreign, of a removed client, or neither the caller\'s own nor for a resource it serves' }),
    token_type: Type.Optional(Type.Literal('Bearer')),
    iss: Type.Optional(Type.String()),
    sub: Type.Optional(Type.String()),
    client_id: Type.Optional(Type.String({ description: 'For a client token: the client (a login token has none)' })),
    aud: Type.Optional(Type.Union([Type.String(), Type.Array(Type.String())], { description: 'The resource, or the resources of a token granted for several' })),
    scope: Type.Optional(Type.String()),
    iat: Type.Optional(Type.Integer()),
    exp: Type.Optional(Type.Integer()),
    jti: Type.Optional(Type.String()),
    act: Type.Optional(Type.Object({ sub: Type.String() }, {
      additionalProperties: true,
      description: 'For an exchanged token (RFC 8693 §4.1): the client acting for sub, and nested in its act the one that acted before'
    })),
    username: Type.Optional(Type.String({ description: 'For a login token (introspected by a client serving JWT_AUDIENCE): the account' }))
  },
  {
    $id: 'IntrospectionResponse',
    additionalProperties: false,
    examples: [{ active: true, token_type: 'Bearer', iss: 'https://auth.example.com', sub: 'billing', client_id: 'billing', aud: 'https://orders.internal', scope: 'orders:read', iat: 1763637178, exp: 1763638078, jti: '0b6c...' }, { active: false }]
  }
)

export const RevocationRequest = Type.Object(
  {
    token: Type.String({ maxLength: 8192, description: 'The access token to revoke' }),
    token_type_hint: Type.Optional(Type.String({ maxLength: 64, description: 'access_token, or anything: only access tokens exist' })),
    ...clientAuthParameters
  },
  { $id: 'RevocationRequest', additionalProperties: true, examples: [{ token: 'eyJhbGc...', token_type_hint: 'access_token' }] }
)
export type RevocationRequest = Static<typeof RevocationRequest>

export const AuthorizationServerMetadata = Type.Object(
  {
    issuer: Type.String(),
    token_endpoint: Type.String(),
    jwks_uri: Type.String(),
    introspection_endpoint: Type.String(),
    revocation_endpoint: Type.String(),
    grant_types_supported: Type.Array(Type.String()),
    response_types_supported: Type.Array(Type.String()),
    token_endpoint_auth_methods_supported: Type.Array(Type.String()),
    token_endpoint_auth_signing_alg_values_supported: Type.Array(Type.String()),
    introspection_endpoint_auth_methods_supported: Type.Array(Type.String()),
    introspection_endpoint_auth_signing_alg_values_supported: Type.Array(Type.String()),
    revocation_endpoint_auth_methods_supported: Type.Array(Type.String()),
    revocation_endpoint_auth_signing_alg_values_supported: Type.Array(Type.String())
  },
  { $id: 'AuthorizationServerMetadata', additionalProperties: false, description: 'RFC 8414 authorization server metadata' }
)

export const oauthSchemas = [OAuthErrorResponse, TokenRequest, TokenResponse, IntrospectionRequest, IntrospectionResponse, RevocationRequest, AuthorizationServerMetadata]
