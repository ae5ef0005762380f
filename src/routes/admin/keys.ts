import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import { HttpError } from '../../http/errors.ts'
import { adminErrorResponses, KeyParams, SigningKeyList } from '../../schemas/admin.ts'
import { errorResponse } from '../../schemas/auth.ts'
import { UnknownKeyError } from '../../tokens/key-lifecycle.ts'
import type { SigningKeys } from '../../tokens/keys.ts'
import { ManagedKeys } from '../../tokens/managed-keys.ts'

/** The published keys: managed keys with their lifecycle's state, key files as the signing key and those that only verify. */
function keyList (keys: SigningKeys) {
  if (keys instanceof ManagedKeys) return { managed: true, keys: keys.statuses().map(({ kid, algorithm, state }) => ({ kid, alg: algorithm, state })) }
  const { signingKey, verificationKeys } = keys.keyRing
  return {
    managed: false,
    keys: [...verificationKeys.values()].map(({ kid, algorithm }) => ({ kid, alg: algorithm, state: kid === signingKey.kid ? 'current' as const : 'retired' as const }))
  }
}

/** /admin/v1/keys: the signing keys, and the emergency revocation of a managed one (as `keys revoke`). */
const adminKeysRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.get('/keys', {
    onRequest: app.adminScope('admin:keys:read'),
    config: { admin: { resource: 'keys', operation: 'list' } },
    schema: {
      operationId: 'listKeys',
      tags: ['keys'],
      summary: 'List the signing keys',
      description: 'Every key of the JWKS: its kid, algorithm and state. Never a private key.',
      security: [{ adminToken: ['admin:keys:read'] }],
      response: { 200: Type.Ref(SigningKeyList), ...adminErrorResponses }
    }
  }, async () => keyList(app.signingKeys))

  app.post('/keys/:kid/revoke', {
    onRequest: app.adminScope('admin:keys:write'),
    config: { admin: { resource: 'keys', operation: 'revoke' } },
    schema: {
      operationId: 'revokeKey',
      tags: ['keys'],
      summary: 'Revoke a managed signing key',
      description: 'Removes the key at once, as `keys revoke` does: out of the JWKS, its tokens refused by every replica within seconds; when it was signing, the next key (or a new one) signs from now. Managed keys only (JWT_KEY_ROTATION_SECONDS).',
      security: [{ adminToken: ['admin:keys:write'] }],
      params: KeyParams,
      response: {
        200: Type.Ref(SigningKeyList, { description: 'Revoked: the keys published now' }),
        400: errorResponse('A malformed kid'),
        404: errorResponse('No published managed key has this kid'),
        409: errorResponse('The keys are key files, which are revoked by removing the file from JWT_VERIFY_KEY_FILES'),
        ...adminErrorResponses
      }
    }
  }, async (request) => {
    const keys = app.signingKeys
    if (!(keys instanceof ManagedKeys)) throw new HttpError(409, 'The signing keys are key files (JWT_KEY_ROTATION_SECONDS is 0): revoke one by removing it from JWT_VERIFY_KEY_FILES and rolling the replicas out')
    await keys.revoke(request.params.kid).catch((error: unknown) => {
      throw error instanceof UnknownKeyError ? new HttpError(404, error.message) : error
    })
    app.auditAdminChange(request, request.params.kid)
    return keyList(keys)
  })
}

export default adminKeysRoutes
