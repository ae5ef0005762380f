import fp from 'fastify-plugin'
import { configuredPasswordHasher, type PasswordHasher } from '../users/passwords.js'
import type { UserRepository } from '../users/repository.js'
import { openUserRepository } from '../storage/open-users.js'

declare module 'fastify' {
  interface FastifyInstance {
    users: UserRepository
    passwords: PasswordHasher
  }
}

/** The user repository chosen by config (Redis or embedded file) and the argon2id hasher. */
export default fp(async function usersPlugin (app) {
  app.decorate('users', openUserRepository(app.config, app.redis))
  const passwords = configuredPasswordHasher(app.config, (reason) => app.metrics.loginShed.inc({ reason }))
  await passwords.prepareDummy()
  app.decorate('passwords', passwords)
}, { name: 'users', dependencies: ['config', 'redis', 'metrics'] })
