import type { FastifyRequest } from 'fastify'
import { HttpError } from './errors.ts'

const REALM = 'auth-service'

/**
 * The message as an RFC 6750 (3) error_description: a quoted-string of %x20-21 / %x23-5B / %x5D-7E
 * only, so no double quote (it would end the string) and no backslash.
 */
function errorDescription (message: string): string {
  return message.replaceAll('"', "'").replace(/[^\x20-\x21\x23-\x5B\x5D-\x7E]/g, '')
}

/** A 401 with the RFC 6750 challenge; no error code when the request carried no token at all. */
export function bearerChallenge (message: string, errorCode?: 'invalid_token'): HttpError {
  const challenge = errorCode === undefined
    ? `Bearer realm="${REALM}"`
    : `Bearer realm="${REALM}", error="${errorCode}", error_description="${errorDescription(message)}"`
  return new HttpError(401, message, { 'www-authenticate': challenge })
}

/** RFC 6750 §3.1: a 403 naming the scope the request needs, for a valid token that lacks it. */
export function insufficientScope (scope: string): HttpError {
  const message = `The token lacks the scope ${scope}`
  return new HttpError(403, message, { 'www-authenticate': `Bearer realm="${REALM}", error="insufficient_scope", scope="${scope}", error_description="${errorDescription(message)}"` })
}

/** The token of an `Authorization: Bearer <token>` header (RFC 6750 §2.1); a 401 with the challenge otherwise. */
export function bearerToken (request: FastifyRequest): string {
  const header = request.headers.authorization
  if (header === undefined) throw bearerChallenge('Missing bearer token')
  const match = /^Bearer +([A-Za-z0-9_.-]+=*) *$/i.exec(header)
  if (match === null) throw bearerChallenge('Authorization header must be "Bearer <token>"', 'invalid_token')
  return match[1]
}
