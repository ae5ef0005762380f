import fp from 'fastify-plugin'
import { keyedHashFromSigningKey, type KeyedHash } from '../tokens/keyed-hash.js'

declare module 'fastify' {
  interface FastifyInstance {
    keyedHash: KeyedHash
  }
}

/** The keyed hash shared by the account throttle and the audit log, its secret derived from the signing key. */
export default fp(async function keyedHashPlugin (app) {
  app.decorate('keyedHash', keyedHashFromSigningKey(app.accessTokens.keyRing.signingKey.privateKeyPem))
}, { name: 'keyed-hash', dependencies: ['tokens'] })
