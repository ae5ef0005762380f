import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { loggableError } from '../observability/log-fields.ts'
import { isStorageUnavailable } from '../storage/errors.ts'

export interface HttpErrorOptions {
  /**
   * false for an answer expected in numbers under load, which metrics count: a warning line for
   * each would turn an overload into a flood of lines. Other 5xx answers are logged as warnings.
   */
  warn?: boolean
}

/** An error whose message is safe to show to the client, with the status to send. */
export class HttpError extends Error {
  readonly statusCode: number
  readonly headers: Record<string, string>
  readonly warn: boolean

  constructor (statusCode: number, message: string, headers: Record<string, string> = {}, { warn = true }: HttpErrorOptions = {}) {
    // An answer to the client, not a fault: no stack trace, which would cost rejected logins ~5% CPU.
    const stackTraceLimit = Error.stackTraceLimit
    Error.stackTraceLimit = 0
    super(message)
    this.statusCode = statusCode
    this.headers = headers
    Error.stackTraceLimit = stackTraceLimit
    this.name = 'HttpError'
    this.warn = warn
  }
}

const FASTIFY_CLIENT_ERRORS: Record<string, { statusCode: number, message: string }> = {
  FST_ERR_CTP_INVALID_MEDIA_TYPE: { statusCode: 415, message: 'Content-Type must be application/json' },
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: { statusCode: 400, message: 'Content-Length does not match the body' },
  FST_ERR_CTP_BODY_TOO_LARGE: { statusCode: 413, message: 'Request body is too large' },
  FST_ERR_CTP_EMPTY_JSON_BODY: { statusCode: 400, message: 'Request body must not be empty' },
  FST_ERR_CTP_INVALID_JSON_BODY: { statusCode: 400, message: 'Request body is not valid JSON' }
}

const STORAGE_UNAVAILABLE = { statusCode: 503, message: 'Service temporarily unavailable, try again shortly' }

/** Shapes a thrown error into the status and `{ message }` a client may see. */
function clientError (error: FastifyError): { statusCode: number, message: string } {
  if (error instanceof HttpError) return { statusCode: error.statusCode, message: error.message }
  if (error.validation !== undefined) return { statusCode: 400, message: error.message }
  const known = error.code !== undefined ? FASTIFY_CLIENT_ERRORS[error.code] : undefined
  if (known !== undefined) return known
  // JSON.parse failures arrive as a SyntaxError with status 400.
  if (error instanceof SyntaxError) return FASTIFY_CLIENT_ERRORS.FST_ERR_CTP_INVALID_JSON_BODY
  const statusCode = error.statusCode ?? 500
  if (statusCode >= 400 && statusCode < 500) return { statusCode, message: error.message }
  return { statusCode: 500, message: 'Internal server error' }
}

/**
 * Classifies and logs an error, sets its status and headers, and sends the body `shape` makes of it.
 * Shared by the `{ message }` handler (messageBody) and the OAuth endpoints' RFC 6749 handler.
 */
export function respondToError (app: FastifyInstance, error: FastifyError, request: FastifyRequest, reply: FastifyReply,
  shape: (statusCode: number, message: string) => unknown): FastifyReply {
  const storageUnavailable = isStorageUnavailable(error)
  if (storageUnavailable) app.metrics.redisErrors.inc()
  const { statusCode, message } = storageUnavailable ? STORAGE_UNAVAILABLE : clientError(error)
  if (error instanceof HttpError) void reply.headers(error.headers)
  if (statusCode === 500) request.log.error({ err: loggableError(error) }, message)
  else if (statusCode >= 500 && !(error instanceof HttpError && !error.warn)) request.log.warn({ statusCode, reason: error.message }, message)
  else request.log.debug({ statusCode, reason: message }, 'request rejected')
  return reply.code(statusCode).send(shape(statusCode, message))
}

/** The body of every error outside the OAuth endpoints: `{ message }` and nothing else. */
export function messageBody (_statusCode: number, message: string): { message: string } {
  return { message }
}

/**
 * The one place that turns errors into responses on an app (the service's and the admin API's):
 * every error body is `{ message }` and nothing else. Needs `app.metrics` (respondToError counts Redis errors).
 */
export function useMessageErrors (app: FastifyInstance): void {
  app.setErrorHandler(function handleError (error: FastifyError, request, reply) {
    return respondToError(app, error, request, reply, messageBody)
  })

  app.setNotFoundHandler(function handleNotFound (request, reply) {
    return reply.code(404).send({ message: `Route ${request.method} ${request.url.split('?')[0]} not found` })
  })
}
