import type { FastifyError } from 'fastify'
import fp from 'fastify-plugin'
import { messageBody, respondToError } from '../http/errors.js'

/** The one place that turns errors into responses: every error body is `{ message }` and nothing else. */
export default fp(async function errorsPlugin (app) {
  app.setErrorHandler(function handleError (error: FastifyError, request, reply) {
    return respondToError(app, error, request, reply, messageBody)
  })

  app.setNotFoundHandler(function handleNotFound (request, reply) {
    return reply.code(404).send({ message: `Route ${request.method} ${request.url.split('?')[0]} not found` })
  })
}, { name: 'errors', dependencies: ['metrics'] })
