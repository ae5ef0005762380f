import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { Type } from '@sinclair/typebox'
import { clientAddress } from '../../http/client-address.ts'
import { envelope } from '../../http/envelope.ts'
import { HttpError } from '../../http/errors.ts'
import { loggableError, printable } from '../../observability/log-fields.ts'
import { LoginRequest, LoginResponse, dependencyErrorResponses, errorResponse } from '../../schemas/auth.ts'
import { HashingRefused } from '../../users/hashing-queue.ts'
import type { PasswordCheck } from '../../users/passwords.ts'
import { usernameKey, type User } from '../../users/repository.ts'

declare module 'fastify' {
  interface FastifyRequest {
    /** The canonical name of the account a login attempt is for, once it is known to exist. */
    loginAccount: string | null
    /** The attempt was shed under overload (answered 503 without hashing), not failed on Redis. */
    loginShed: boolean
  }
}

const LOGIN_BODY_LIMIT_BYTES = 8 * 1024
const SUCCESS_MESSAGE = 'Authentication successful'
const BAD_CREDENTIALS_MESSAGE = 'Username or password is incorrect'

/**
 * A login shed under overload, before any hashing. The queue holds a few hashes per thread, so it
 * drains within a second: Retry-After 1. Counted by auth_login_shed_total and the audit line; no
 * log line of its own, which would turn an overload into a flood of lines.
 */
const OVERLOADED = new HttpError(503, 'Too many logins in progress, retry shortly', { 'retry-after': '1' }, { warn: false })

/**
 * How a login attempt ended, by the status it was answered with: the audit line's and the metric's
 * outcome. Of the 503s, `shed` is the bounded hashing queue's answer to overload and `unavailable`
 * a Redis failure: one calls for capacity, the other for Redis.
 */
type LoginOutcome = 'success' | 'bad_credentials' | 'rate_limited' | 'invalid' | 'shed' | 'unavailable' | 'error'

function loginOutcome (statusCode: number, shed: boolean): LoginOutcome {
  if (statusCode === 200) return 'success'
  if (statusCode === 401) return 'bad_credentials'
  if (statusCode === 429) return 'rate_limited'
  if (statusCode === 503) return shed ? 'shed' : 'unavailable'
  if (statusCode >= 400 && statusCode < 500) return 'invalid'
  return 'error'
}

/**
 * POST /api/auth/login, top to bottom: per-IP rate limit (onRequest, before the body is read) ->
 * schema validation -> per-username throttle -> look up the user and verify the password ->
 * sign -> envelope.
 */
const loginRoute: FastifyPluginAsyncTypebox = async (app) => {
  app.decorateRequest('loginAccount', null)
  app.decorateRequest('loginShed', false)

  /** Counts an attempt and logs its audit line, unless it is one of a flood of rejections from one address. */
  function auditAttempt (request: FastifyRequest, reply: FastifyReply): void {
    const outcome = loginOutcome(reply.statusCode, request.loginShed)
    app.metrics.loginAttempts.inc({ outcome })
    // A flood of rejections from one address becomes one summary line per interval, not a line each.
    if (reply.statusCode >= 400 && !app.rejectionLog.admit(request.ip, outcome)) return
    const username = (request.body as Partial<LoginRequest> | undefined)?.username
    request.log.info({
      audit: 'login',
      outcome,
      // The account's name only when it exists: an unknown "username" may be a password typed in the
      // wrong field. Otherwise a keyed hash, which still links the attempts made with one name.
      ...(request.loginAccount !== null
        ? { username: printable(request.loginAccount) }
        : { usernameHash: typeof username === 'string' ? app.keyedHash.digest('audit-username', usernameKey(username)) : undefined }),
      clientIp: request.ip,
      statusCode: reply.statusCode,
      responseTime: reply.elapsedTime
    }, 'login attempt')
  }

  app.post('/api/auth/login', {
    bodyLimit: LOGIN_BODY_LIMIT_BYTES,
    // Every attempt, however it ended (limited ones never reach the handler), is counted and audited.
    onResponse: (request, reply, done) => {
      auditAttempt(request, reply)
      done()
    },
    // A verification the hashing queue refused is the overload answer, whichever step it came from.
    errorHandler: (error, request, reply) => {
      request.loginShed = error instanceof HashingRefused
      app.errorHandler(request.loginShed ? OVERLOADED : error, request, reply)
    },
    config: { rateLimit: { max: app.config.RATE_LIMIT_MAX, timeWindow: app.config.RATE_LIMIT_WINDOW_MS } },
    schema: {
      operationId: 'login',
      tags: ['auth'],
      summary: 'Log in with username and password',
      description: 'Returns a JWT access token. At most RATE_LIMIT_MAX attempts (default 5) per client IP in any rolling RATE_LIMIT_WINDOW_MS (default 60 s), successful or not.',
      security: [],
      body: Type.Ref(LoginRequest),
      response: {
        200: Type.Ref(LoginResponse, { description: 'Authenticated' }),
        400: errorResponse('Malformed JSON or a body that does not match LoginRequest'),
        401: errorResponse('Username or password is incorrect'),
        413: errorResponse('Request body is too large'),
        415: errorResponse('Content-Type is not application/json'),
        429: errorResponse('Too many login attempts from this client, or too many failures for this username; see Retry-After'),
        ...dependencyErrorResponses,
        503: errorResponse('Redis is unavailable, or too many logins are waiting for a hashing thread (see Retry-After)')
      }
    }
  }, async function login (request, reply) {
    // Under overload, answered before the throttle counts it as a failure: it tests no password.
    app.passwords.refuseWhenFull()
    const { username, password } = request.body as LoginRequest
    // The user's record is asked for beside the throttle's verdict, so both share one round trip to
    // Redis. Its failure is handled where it is awaited, or nowhere when the throttle refuses.
    const lookup = app.users.find(username)
    lookup.catch(() => {})
    // Waits briefly for this account's attempts in flight when it could pass the threshold with them.
    const attempt = await app.accountThrottle.admit(username, clientAddress(request.ip, app.config.RATE_LIMIT_IPV6_PREFIX))
    if (attempt.waitMs > 0) {
      const seconds = Math.ceil(attempt.waitMs / 1000)
      throw new HttpError(429, `Too many failed login attempts for this username, retry in ${seconds} second${seconds === 1 ? '' : 's'}`, { 'retry-after': String(seconds) })
    }

    let user: User | undefined
    let verification: PasswordCheck
    try {
      user = await lookup
      // Past this (when the request arrived + requestTimeout, 0 being none) the client has given up: not worth a hash.
      const deadline = performance.now() - reply.elapsedTime + (app.server.requestTimeout || Infinity)
      if (user !== undefined) request.loginAccount = user.username
      // An unknown user costs one argon2 verification too, so timing does not reveal which usernames exist.
      const verified = app.metrics.argon2Duration.startTimer({ operation: 'verify' })
      verification = user !== undefined
        ? await app.passwords.verify(user.passwordHash, password, deadline)
        : { valid: await app.passwords.verifyDummy(password, deadline), needsRehash: false }
      verified()
    } catch (error) {
      await attempt.abandon()
      throw error
    }
    // A disabled account answers as a wrong password does: the login form is no oracle for account state.
    if (user === undefined || !verification.valid || user.disabled === true) {
      await attempt.fail()
      throw new HttpError(401, BAD_CREDENTIALS_MESSAGE)
    }
    await attempt.succeed()

    if (verification.needsRehash) {
      const hashed = app.metrics.argon2Duration.startTimer({ operation: 'hash' })
      const newHash = await app.passwords.hash(password)
      hashed()
      await app.users.replacePasswordHash(user.username, user.passwordHash, newHash)
        .catch((error: unknown) => request.log.warn({ err: loggableError(error) }, 'password rehash not stored; will retry at the next login'))
    }

    const { accessToken, claims } = app.accessTokens.issueUserToken(user.username)
    // The envelope's expireDate is the token's exp, in Unix ms.
    const expireDate = claims.exp * 1000
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
