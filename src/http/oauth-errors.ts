import type { FastifyError, FastifyInstance } from 'fastify'
import { HttpError, respondToError } from './errors.ts'

/** The error codes of RFC 6749 §5.2 and RFC 8707 §2 the OAuth endpoints answer with, plus two for HTTP conditions. */
export type OAuthErrorCode =
  | 'invalid_request'
  | 'invalid_client'
  /** The client may not use this grant type (token exchange without an exchange policy). */
  | 'unauthorized_client'
  | 'unsupported_grant_type'
  | 'invalid_scope'
  | 'invalid_target'
  | 'unsupported_token_type'
  /** 429, a registered token-endpoint error (RFC 8628 §3.5): wait Retry-After seconds. */
  | 'slow_down'
  /** 503, RFC 6749 §4.1.2.1's name for a passing outage. */
  | 'temporarily_unavailable'
  | 'server_error'

/** An error the OAuth endpoints answer as `{ error, error_description }` (RFC 6749 §5.2). */
export class OAuthError extends HttpError {
  readonly error: OAuthErrorCode

  constructor (statusCode: number, error: OAuthErrorCode, description: string, headers: Record<string, string> = {}) {
    super(statusCode, description, headers)
    this.error = error
    this.name = 'OAuthError'
  }
}

/**
 * invalid_client is 401 with the Basic challenge, however the client authenticated: RFC 6749 §5.2
 * asks for it when the client used Basic, RFC 9110 §15.5.2 for a challenge on every 401, and
 * Basic is the one HTTP authentication scheme these endpoints accept.
 */
export function invalidClient (description: string): OAuthError {
  return new OAuthError(401, 'invalid_client', description, { 'www-authenticate': 'Basic realm="auth-service", charset="UTF-8"' })
}

/** A wait as the whole seconds of a Retry-After header: rounded up, at least 1. */
export function retryAfterSeconds (waitMs: number): number {
  return Math.max(1, Math.ceil(waitMs / 1000))
}

/** 429 with Retry-After in whole seconds. */
export function slowDown (description: string, waitMs: number): OAuthError {
  const seconds = retryAfterSeconds(waitMs)
  return new OAuthError(429, 'slow_down', `${description}, retry in ${seconds} second${seconds === 1 ? '' : 's'}`, { 'retry-after': String(seconds) })
}

/** For errors not raised as OAuthError (validation, body size, outages): the code their status means. */
function codeFor (statusCode: number): OAuthErrorCode {
  if (statusCode === 401) return 'invalid_client'
  if (statusCode === 429) return 'slow_down'
  if (statusCode === 503) return 'temporarily_unavailable'
  if (statusCode >= 500) return 'server_error'
  return 'invalid_request'
}

/**
 * The error handler of the OAuth endpoints' scope: the same classification and logging as every
 * other route (respondToError), in the body OAuth clients parse instead of `{ message }`.
 */
export function useOAuthErrors (app: FastifyInstance): void {
  app.setErrorHandler(function handleOAuthError (error: FastifyError, request, reply) {
    return respondToError(app, error, request, reply, (statusCode, message) => ({
      error: error instanceof OAuthError ? error.error : codeFor(statusCode),
      error_description: statusCode === 415 ? 'Content-Type must be application/x-www-form-urlencoded' : message
    }))
  })
}
