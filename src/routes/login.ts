import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import { HttpError } from '../plugins/errors.js'
import { loggableError } from '../redis-client.js'
import { loginOutcome } from '../plugins/metrics.js'
import { LoginRequest, LoginResponse, dependencyErrorResponses, errorResponse } from '../schemas/auth.js'
import { envelope } from './envelope.js'

const LOGIN_BODY_LIMIT_BYTES = 8 * 1024
const SUCCESS_MESSAGE = 'Authentication successful'
const BAD_CREDENTIALS_MESSAGE = 'Username or password is incorrect'


/**
 * POST /api/auth/login, top to bottom: per-IP rate limit (onRequest, before the body is read) ->
 * schema validation -> per-username throttle -> look up the user and verify the password ->
 * sign -> envelope.
 */
const loginRoute: FastifyPluginAsyncTypebox = async (app) => {
  app.post('/api/auth/login', {
    bodyLimit: LOGIN_BODY_LIMIT_BYTES,
    // Every attempt, however it ended (limited ones never reach the handler), is counted and audited.
    onResponse: async (request, reply) => {
      const outcome = loginOutcome(reply.statusCode)
      app.metrics.loginAttempts.inc({ outcome })
      const username = (request.body as Partial<LoginRequest> | undefined)?.username
      request.log.info({
        audit: 'login',
        outcome,
        username: typeof username === 'string' ? username.slice(0, 128) : undefined,
        clientIp: request.ip,
        statusCode: reply.statusCode,
        responseTime: reply.elapsedTime
      }, 'login attempt')
    },
    config: { rateLimit: { max: app.config.RATE_LIMIT_MAX, timeWindow: app.config.RATE_LIMIT_WINDOW_MS } },
    schema: {
      operationId: 'login',
      tags: ['auth'],
      summary: 'Log in with username and password',
      description: 'Returns a JWT access token. At most RATE_LIMIT_MAX attempts (default 5) per client IP in any rolling RATE_LIMIT_WINDOW_MS (default 60 s), successful or not.',
      body: Type.Ref(LoginRequest),
      response: {
        200: Type.Ref(LoginResponse, { description: 'Authenticated' }),
        400: errorResponse('Malformed JSON or a body that does not match LoginRequest'),
        401: errorResponse('Username or password is incorrect'),
        413: errorResponse('Request body is too large'),
        415: errorResponse('Content-Type is not application/json'),
        429: errorResponse('Too many login attempts from this client, or too many failures for this username; see Retry-After'),
        ...dependencyErrorResponses
      }
    }
  }, async function login (request, reply) {
    const { username, password } = request.body as LoginRequest
    // Counts this attempt as a failure until it succeeds, so concurrent guesses cannot outrun it.
    const waitMs = await app.accountThrottle.admit(username)
    if (waitMs > 0) {
      const seconds = Math.ceil(waitMs / 1000)
      throw new HttpError(429, `Too many failed login attempts for this username, retry in ${seconds} second${seconds === 1 ? '' : 's'}`, { 'retry-after': String(seconds) })
    }

    const user = await app.users.find(username)
    // An unknown user costs one argon2 verification too, so timing does not reveal which usernames exist.
    const verified = app.metrics.argon2Duration.startTimer({ operation: 'verify' })
    const verification = user !== undefined
      ? await app.passwords.verify(user.passwordHash, password)
      : { valid: await app.passwords.verifyDummy(password), needsRehash: false }
    verified()
    if (user === undefined || !verification.valid) throw new HttpError(401, BAD_CREDENTIALS_MESSAGE)
    await app.accountThrottle.recordSuccess(username)

    if (verification.needsRehash) {
      const hashed = app.metrics.argon2Duration.startTimer({ operation: 'hash' })
      const newHash = await app.passwords.hash(password)
      hashed()
      await app.users.replacePasswordHash(user.username, user.passwordHash, newHash)
        .catch((error: unknown) => request.log.warn({ err: loggableError(error) }, 'password rehash not stored; will retry at the next login'))
    }

    const { accessToken, expireDate } = app.tokens.issue(user.username)
    return envelope(reply, SUCCESS_MESSAGE, (generatedAt) => ({
      accessToken,
      tokenType: 'Bearer' as const,
      expireDate,
      remainingTime: expireDate - generatedAt,
      username: user.username,
      message: SUCCESS_MESSAGE
    }))
  })
}

export default loginRoute
