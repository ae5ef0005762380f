import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { Type } from '@sinclair/typebox'
import { checkIfMatch, entityTag } from '../../http/etag.ts'
import { HttpError } from '../../http/errors.ts'
import { adminErrorResponses, IfMatchHeaders, PageQuery, PasswordRequest, UserPage, UserParams, UserRequest, UserResponse } from '../../schemas/admin.ts'
import { errorResponse } from '../../schemas/auth.ts'
import { accountPasswordViolation, usernameViolation } from '../../users/accounts.ts'
import { canonicalUsername, UserExistsError, type User } from '../../users/repository.ts'
import { DEFAULT_PAGE_LIMIT } from './clients.ts'

/** An account as the API shows it: never its password hash. */
function userView (user: User) {
  return { username: user.username, disabled: user.disabled === true, createdAt: user.createdAt, updatedAt: user.updatedAt }
}

/** The tag of everything stored of an account but its password hash (a password change changes updatedAt and tokensValidAfter). */
const userTag = ({ passwordHash: _hash, ...record }: User) => entityTag(record)

const noSuchUser = (username: string) => new HttpError(404, `No such user "${canonicalUsername(username)}"`)

const changeResponses = {
  200: Type.Ref(UserResponse, { description: 'Changed, with its new ETag' }),
  400: errorResponse('A malformed username or body'),
  404: errorResponse('No such user'),
  412: errorResponse('If-Match does not match: the account changed since it was read'),
  ...adminErrorResponses
}

/**
 * /admin/v1/users: accounts, as the users CLI manages them. Every change ends the account's tokens
 * as the CLI's does, in the store's own operation: a new password or disabling refuses the tokens
 * issued before, removing refuses them all.
 */
const adminUsersRoutes: FastifyPluginAsyncTypebox = async (app) => {
  /** The account as stored now, after the If-Match check against it (not atomic with the change that follows: accounts change rarely, and by operators). */
  async function current (request: FastifyRequest, username: string, ifMatchRequired: boolean): Promise<User> {
    const user = await app.users.find(username)
    if (user === undefined) throw noSuchUser(username)
    checkIfMatch(request, userTag(user), ifMatchRequired)
    return user
  }

  /** The account once changed, with its tag and its audit line. */
  async function changed (request: FastifyRequest, reply: FastifyReply, username: string, fields: string[]) {
    const user = await app.users.find(username)
    if (user === undefined) throw noSuchUser(username)
    app.auditAdminChange(request, user.username, fields)
    void reply.header('etag', userTag(user))
    return userView(user)
  }

  async function policyCheckedHash (username: string, password: string): Promise<string> {
    const violation = await accountPasswordViolation(username, password, app.config)
    if (violation !== undefined) throw new HttpError(400, violation)
    return await app.passwords.hash(password)
  }

  app.get('/users', {
    onRequest: app.adminScope('admin:users:read'),
    config: { admin: { resource: 'users', operation: 'list' } },
    schema: {
      operationId: 'listUsers',
      tags: ['users'],
      summary: 'List accounts, a page at a time',
      description: 'Accounts in username order, at most `limit` of them, after `cursor` (the `next` of the page before).',
      security: [{ adminToken: ['admin:users:read'] }],
      querystring: PageQuery,
      response: { 200: Type.Ref(UserPage), 400: errorResponse('A malformed cursor or limit'), ...adminErrorResponses }
    }
  }, async (request) => {
    const page = await app.users.page(request.query.cursor, Number(request.query.limit ?? DEFAULT_PAGE_LIMIT))
    return { users: page.users.map(userView), ...(page.next !== undefined ? { next: page.next } : {}) }
  })

  app.get('/users/:username', {
    onRequest: app.adminScope('admin:users:read'),
    config: { admin: { resource: 'users', operation: 'get' } },
    schema: {
      operationId: 'getUser',
      tags: ['users'],
      summary: 'Read an account',
      description: 'The account (matched as at login: case-insensitively, after NFKC) with its ETag, for If-Match on a later change.',
      security: [{ adminToken: ['admin:users:read'] }],
      params: UserParams,
      response: { 200: Type.Ref(UserResponse), 400: errorResponse('A malformed username'), 404: errorResponse('No such user'), ...adminErrorResponses }
    }
  }, async (request, reply) => {
    const user = await current(request, request.params.username, false)
    void reply.header('etag', userTag(user))
    return userView(user)
  })

  app.post('/users', {
    onRequest: app.adminScope('admin:users:write'),
    config: { admin: { resource: 'users', operation: 'create' } },
    schema: {
      operationId: 'createUser',
      tags: ['users'],
      summary: 'Create an account',
      description: 'Creates an account whose password meets the password policy (length, not breached, not guessable, not the username or the service\'s name), hashed with argon2id as at login.',
      security: [{ adminToken: ['admin:users:write'] }],
      body: Type.Ref(UserRequest),
      response: {
        201: Type.Ref(UserResponse, { description: 'Created, with its ETag' }),
        400: errorResponse('A username the login cannot carry, or a password the policy refuses (the message says which rule)'),
        409: errorResponse('The username is taken'),
        413: errorResponse('The body is too large'),
        415: errorResponse('The body is not JSON'),
        ...adminErrorResponses
      }
    }
  }, async (request, reply) => {
    const { username, password } = request.body
    const invalid = usernameViolation(username)
    if (invalid !== undefined) throw new HttpError(400, invalid)
    if (await app.users.find(username) !== undefined) throw new HttpError(409, `User "${canonicalUsername(username)}" already exists`)
    const passwordHash = await policyCheckedHash(username, password)
    const now = Date.now()
    await app.users.create({ username, passwordHash, createdAt: now, updatedAt: now }).catch((error: unknown) => {
      throw error instanceof UserExistsError ? new HttpError(409, error.message) : error
    })
    reply.code(201).header('location', `/admin/v1/users/${encodeURIComponent(canonicalUsername(username))}`)
    return await changed(request, reply, username, ['username', 'password'])
  })

  app.put('/users/:username/password', {
    onRequest: app.adminScope('admin:users:write'),
    config: { admin: { resource: 'users', operation: 'change_password' } },
    schema: {
      operationId: 'changeUserPassword',
      tags: ['users'],
      summary: 'Set an account\'s password',
      description: 'Sets a new password, held to the password policy; every token issued before is refused from now on, by every replica. If-Match, when sent, must match.',
      security: [{ adminToken: ['admin:users:write'] }],
      params: UserParams,
      headers: IfMatchHeaders(false),
      body: Type.Ref(PasswordRequest),
      response: { ...changeResponses, 400: errorResponse('A password the policy refuses (the message says which rule)'), 413: errorResponse('The body is too large'), 415: errorResponse('The body is not JSON') }
    }
  }, async (request, reply) => {
    const user = await current(request, request.params.username, false)
    if (!await app.users.setPasswordHash(user.username, await policyCheckedHash(user.username, request.body.password))) throw noSuchUser(user.username)
    return await changed(request, reply, user.username, ['password'])
  })

  for (const [action, disabled] of [['disable', true], ['enable', false]] as const) {
    app.post(`/users/:username/${action}`, {
      onRequest: app.adminScope('admin:users:write'),
      config: { admin: { resource: 'users', operation: action } },
      schema: {
        operationId: `${action}User`,
        tags: ['users'],
        summary: disabled ? 'Disable an account' : 'Enable a disabled account',
        description: disabled
          ? 'Refuses the account\'s logins and every token it was issued, by every replica. If-Match, when sent, must match.'
          : 'Lets a disabled account log in again; the tokens issued before it was disabled stay refused. If-Match, when sent, must match.',
        security: [{ adminToken: ['admin:users:write'] }],
        params: UserParams,
        headers: IfMatchHeaders(false),
        response: changeResponses
      }
    }, async (request, reply) => {
      const user = await current(request, request.params.username, false)
      if (!await app.users.setDisabled(user.username, disabled)) throw noSuchUser(user.username)
      return await changed(request, reply, user.username, ['disabled'])
    })
  }

  app.delete('/users/:username', {
    onRequest: app.adminScope('admin:users:write'),
    config: { admin: { resource: 'users', operation: 'delete' } },
    schema: {
      operationId: 'deleteUser',
      tags: ['users'],
      summary: 'Remove an account',
      description: 'Removes the account: its tokens are refused at once by every replica. If-Match is required.',
      security: [{ adminToken: ['admin:users:write'] }],
      params: UserParams,
      headers: IfMatchHeaders(true),
      response: {
        204: Type.Null({ description: 'Removed' }),
        400: errorResponse('A malformed username'),
        404: errorResponse('No such user'),
        412: errorResponse('If-Match does not match: the account changed since it was read'),
        428: errorResponse('If-Match is missing'),
        ...adminErrorResponses
      }
    }
  }, async (request, reply) => {
    const user = await current(request, request.params.username, true)
    if (!await app.users.remove(user.username)) throw noSuchUser(user.username)
    app.auditAdminChange(request, user.username)
    return await reply.code(204).send(null)
  })
}

export default adminUsersRoutes
