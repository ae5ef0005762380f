import { Type, type Static } from '@sinclair/typebox'

/**
 * The clients file (YAML): clients declared in git and applied by `clients apply` or CLIENTS_FILE.
 * Its field names are part of the product's interface; schemas/clients-file.schema.json is
 * generated from this one source (`npm run schemas`) for editors and pipelines.
 */

/** Client ids are plain tokens: safe in a URL, a form, a Basic header and a Redis hash tag. */
export const CLIENT_ID_PATTERN_SOURCE = '^[A-Za-z0-9._~-]{1,128}$'

/** A secret's digest as the file holds it: SHA-256 of the secret, as lowercase hex. */
export const SECRET_DIGEST_PATTERN_SOURCE = '^sha256:[0-9a-f]{64}$'

const resources = (description: string) => Type.Array(Type.String({ minLength: 1, maxLength: 512, pattern: '^\\S+$' }), { minItems: 1, uniqueItems: true, description })
const keyUrl = (description: string) => Type.String({ minLength: 1, pattern: '^(https|http)://', description })

export const ClientsFileEntry = Type.Object({
  id: Type.String({ pattern: CLIENT_ID_PATTERN_SOURCE, description: 'The client id (client_id): 1 to 128 of A-Z a-z 0-9 . _ ~ -' }),
  scopes: Type.Array(Type.String({ minLength: 1, maxLength: 128 }), { minItems: 1, uniqueItems: true, description: 'Scopes it may be granted; a grant without `scope` gets all of them' }),
  audiences: resources('Resources (`aud`) it may get tokens for; the first is the default. Never JWT_AUDIENCE'),
  serves: Type.Optional(resources('Resources it serves: it may introspect tokens for them (JWT_AUDIENCE: login tokens)')),
  exchangeAudiences: Type.Optional(resources('Resources it may exchange tokens for (RFC 8693 token exchange): a token it may introspect for a narrower one for one of these. Never JWT_AUDIENCE')),
  ttlSeconds: Type.Optional(Type.Integer({ minimum: 60, maximum: 86400, description: 'Lifetime of its tokens; TOKEN_TTL_SECONDS when unset' })),
  secretDigests: Type.Optional(Type.Array(Type.String({ pattern: SECRET_DIGEST_PATTERN_SOURCE }), {
    minItems: 1,
    maxItems: 2,
    uniqueItems: true,
    description: 'client_secret_basic / client_secret_post: the digests of its live secrets (`clients generate-secret`), one, or two during a rotation. Never a secret itself'
  })),
  jwksUri: Type.Optional(keyUrl('private_key_jwt: the URL of its public keys (https; http only on a loopback host)')),
  jwks: Type.Optional(Type.Object({ keys: Type.Array(Type.Object({ kty: Type.String() }), { minItems: 1 }) }, { description: 'private_key_jwt: its public keys inline, a JWK Set' })),
  federated: Type.Optional(Type.Object({
    issuer: Type.String({ minLength: 1, description: 'The issuer of its workload tokens' }),
    subject: Type.String({ minLength: 1, description: 'The `sub` of its workload tokens' }),
    jwksUri: keyUrl('Where that issuer publishes its keys')
  }, { additionalProperties: false, description: 'Workload identity: a token of this issuer about this subject is its credential' }))
}, { additionalProperties: false, description: 'One client. It authenticates in exactly one way: secretDigests, jwksUri, jwks or federated' })

export const ClientsFile = Type.Object({
  clients: Type.Array(ClientsFileEntry, { description: 'Every client the file manages' })
}, {
  title: 'auth-service clients file',
  additionalProperties: false
})

export type ClientsFileEntry = Static<typeof ClientsFileEntry>
export type ClientsFile = Static<typeof ClientsFile>

/** The committed JSON Schema document of the clients file. */
export function clientsFileJsonSchema (): string {
  return JSON.stringify({ $schema: 'https://json-schema.org/draft/2020-12/schema', ...ClientsFile }, null, 2) + '\n'
}
