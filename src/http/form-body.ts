import type { FastifyInstance } from 'fastify'
import { OAuthError } from './oauth-errors.ts'

/** Far above any real request (an RSA client assertion is about 1 KiB). */
export const FORM_BODY_LIMIT_BYTES = 16 * 1024

/**
 * Makes `application/x-www-form-urlencoded` the only body the scope accepts, parsed into a plain
 * object of strings. A parameter sent twice is an invalid_request (RFC 6749 §3.2: parameters
 * MUST NOT be included more than once), never silently one of the two; the parameters named in
 * `repeatable`, which a specification lets a request repeat, are always lists of every value.
 */
export function acceptFormBodies (app: FastifyInstance, repeatable: string[] = []): void {
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: FORM_BODY_LIMIT_BYTES }, (_request, body, done) => {
    const form: Record<string, string | string[]> = Object.create(null)
    for (const [name, value] of new URLSearchParams(body as string)) {
      const values = form[name]
      if (Array.isArray(values)) {
        values.push(value)
      } else if (repeatable.includes(name)) {
        form[name] = [value]
      } else if (values !== undefined) {
        done(new OAuthError(400, 'invalid_request', `Parameter ${name.slice(0, 64)} is included more than once`), undefined)
        return
      } else {
        form[name] = value
      }
    }
    done(null, form)
  })
}
