import { randomUUID } from 'node:crypto'
import fastifyJwt from '@fastify/jwt'
import fp from 'fastify-plugin'
import type { SigningKey } from '../tokens/keys.js'

export interface IssuedToken {
  accessToken: string
  /** When the token stops verifying, in Unix ms (its `exp` claim times 1000). */
  expireDate: number
}

declare module 'fastify' {
  interface FastifyInstance {
    tokens: {
      signingKey: SigningKey
      issue (username: string): IssuedToken
    }
  }
}

/**
 * @fastify/jwt with the asymmetric signing key. Verification allow-lists exactly the configured
 * algorithm, issuer and audience, so `alg: none` or an HMAC token made with the public key fail.
 */
export default fp<{ signingKey: SigningKey }>(async function tokensPlugin (app, { signingKey }) {
  const { JWT_ISSUER: issuer, JWT_AUDIENCE: audience, TOKEN_TTL_SECONDS: ttlSeconds } = app.config
  await app.register(fastifyJwt, {
    secret: { private: signingKey.privateKeyPem, public: signingKey.publicKeyPem },
    sign: { algorithm: signingKey.algorithm, kid: signingKey.kid, iss: issuer, aud: audience },
    verify: { algorithms: [signingKey.algorithm], allowedIss: issuer, allowedAud: audience }
  })

  app.decorate('tokens', {
    signingKey,
    issue (username: string): IssuedToken {
      const issuedAt = Math.floor(Date.now() / 1000)
      const expiresAt = issuedAt + ttlSeconds
      const accessToken = app.jwt.sign({ sub: username, jti: randomUUID(), iat: issuedAt, exp: expiresAt })
      return { accessToken, expireDate: expiresAt * 1000 }
    }
  })
}, { name: 'tokens', dependencies: ['config'] })
