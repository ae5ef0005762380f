import { Type, type ObjectOptions, type Static, type TSchema } from '@sinclair/typebox'

/** Every error body: one human-readable message and nothing else. */
export const ErrorResponse = Type.Object(
  { message: Type.String({ description: 'Human-readable error message' }) },
  {
    $id: 'ErrorResponse',
    additionalProperties: false,
    examples: [{ message: 'Username or password is incorrect' }]
  }
)

/** An error response of a route, described for the OpenAPI document. */
export const errorResponse = (description: string) => Type.Ref(ErrorResponse, { description })

/** What any route that reaches Redis may answer besides its own statuses. */
export const dependencyErrorResponses = {
  500: errorResponse('Unexpected error'),
  503: errorResponse('A dependency (Redis) is unavailable')
}

export const LoginRequest = Type.Object(
  {
    username: Type.String({ minLength: 1, maxLength: 128, description: "User's username" }),
    password: Type.String({ minLength: 1, maxLength: 1024, description: "User's password" })
  },
  {
    $id: 'LoginRequest',
    additionalProperties: false,
    examples: [{ username: 'john.doe', password: 'securePassword123' }]
  }
)
export type LoginRequest = Static<typeof LoginRequest>

export const ResponseMeta = Type.Object(
  {
    executionTime: Type.Integer({ description: 'Request processing time in milliseconds' }),
    generatedAt: Type.Integer({ description: 'Response generation timestamp (Unix timestamp in ms)' })
  },
  { $id: 'ResponseMeta', additionalProperties: false }
)

/** The response envelope shared by every successful auth route: data, meta, message. */
function Envelope<T extends TSchema> (data: T, options: ObjectOptions) {
  return Type.Object(
    {
      data,
      meta: Type.Ref(ResponseMeta),
      message: Type.String({ description: 'Main response status message' })
    },
    { additionalProperties: false, ...options }
  )
}

export const LoginResponse = Envelope(
  Type.Object(
    {
      accessToken: Type.String({ description: 'JWT access token for authorizing subsequent requests' }),
      tokenType: Type.Literal('Bearer', { description: 'Token type (always "Bearer")' }),
      expireDate: Type.Integer({ description: 'Token expiration date (Unix timestamp in ms)' }),
      remainingTime: Type.Integer({ description: 'Token validity time remaining in milliseconds' }),
      username: Type.String({ description: 'Username of the authenticated user' }),
      message: Type.String({ description: 'Message confirming successful authentication' })
    },
    { additionalProperties: false }
  ),
  {
    $id: 'LoginResponse',
    examples: [{
      data: {
        accessToken: 'eyJhbGc...',
        tokenType: 'Bearer',
        expireDate: 1763638078917,
        remainingTime: 899999,
        username: 'john.doe',
        message: 'Authentication successful'
      },
      meta: { executionTime: 9, generatedAt: 1763637178918 },
      message: 'Authentication successful'
    }]
  }
)
export type LoginResponse = Static<typeof LoginResponse>

/** Who a presented token belongs to and how long it stays valid. */
const TokenHolder = Type.Object(
  {
    username: Type.String({ description: 'Username the token was issued to (its sub claim)' }),
    expireDate: Type.Integer({ description: 'Token expiration date (Unix timestamp in ms)' }),
    remainingTime: Type.Integer({ description: 'Token validity time remaining in milliseconds' })
  },
  { additionalProperties: false }
)

export const MeResponse = Envelope(TokenHolder, {
  $id: 'MeResponse',
  examples: [{
    data: { username: 'john.doe', expireDate: 1763638078917, remainingTime: 512345 },
    meta: { executionTime: 1, generatedAt: 1763637566572 },
    message: 'Authenticated'
  }]
})

export const LogoutResponse = Envelope(TokenHolder, {
  $id: 'LogoutResponse',
  examples: [{
    data: { username: 'john.doe', expireDate: 1763638078917, remainingTime: 512345 },
    meta: { executionTime: 2, generatedAt: 1763637566572 },
    message: 'Token revoked'
  }]
})

export const HealthResponse = Type.Object(
  { status: Type.String({ description: '"ok" when alive, "ready" when able to serve logins' }) },
  { $id: 'HealthResponse', additionalProperties: false }
)

/** Registered with app.addSchema so routes and the OpenAPI components share one definition. */
export const sharedSchemas = [ErrorResponse, LoginRequest, ResponseMeta, LoginResponse, MeResponse, LogoutResponse, HealthResponse]
