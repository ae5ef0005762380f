import fp from 'fastify-plugin'
import { useMessageErrors } from '../http/errors.ts'

/** Every error body is `{ message }` and nothing else (http/errors.ts, shared with the admin API). */
export default fp(async function errorsPlugin (app) {
  useMessageErrors(app)
}, { name: 'errors', dependencies: ['metrics'] })
