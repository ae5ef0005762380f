import fp from 'fastify-plugin'
import { keyedHashOf, type KeyedHash } from '../tokens/keyed-hash.ts'
import type { KeySource } from '../tokens/keys.ts'

declare module 'fastify' {
  interface FastifyInstance {
    keyedHash: KeyedHash
  }
}

/** The keyed hash shared by the account throttle and the audit log (its secret: keyed-hash.ts). */
export default fp<{ keys: KeySource }>(async function keyedHashPlugin (app, { keys }) {
  app.decorate('keyedHash', keyedHashOf(keys))
}, { name: 'keyed-hash' })
