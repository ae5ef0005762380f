import { createHash } from 'node:crypto'
import type { FastifyRequest } from 'fastify'
import { HttpError } from './errors.ts'

/**
 * A strong entity tag (RFC 9110 §8.8.3) of a stored record: a digest of all of it, so it changes
 * with every change of the record. Not a secret: the record's secret fields are digests already,
 * and a digest of them tells nothing more.
 */
export function entityTag (record: unknown): string {
  return `"${createHash('sha256').update(JSON.stringify(record)).digest('base64url').slice(0, 27)}"`
}

/**
 * The If-Match precondition (RFC 9110 §13.1.1) against the record's current tag: 428 when it is
 * `required` and absent, 412 when it names another tag. `*` matches any existing record.
 */
export function checkIfMatch (request: FastifyRequest, currentTag: string, required: boolean): void {
  const header = request.headers['if-match']
  if (header === undefined) {
    if (required) throw new HttpError(428, 'If-Match is required: send the ETag of the record as last read')
    return
  }
  const tags = header.split(',').map((tag) => tag.trim())
  if (!tags.includes('*') && !tags.includes(currentTag)) throw new HttpError(412, 'The record has changed since it was read (If-Match does not match its ETag): read it again')
}
