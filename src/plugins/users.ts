import fp from 'fastify-plugin'
import { configuredPasswordHasher, type PasswordHasher } from '../users/passwords.ts'
import type { UserRepository } from '../users/repository.ts'

declare module 'fastify' {
  interface FastifyInstance {
    users: UserRepository
    passwords: PasswordHasher
  }
}

/** The user repository (from app.stores) and the argon2id hasher. */
export default fp(async function usersPlugin (app) {
  app.decorate('users', app.stores.durable.users)
  const passwords = configuredPasswordHasher(app.config, (reason) => app.metrics.loginShed.inc({ reason }))
  await passwords.prepareDummy()
  app.decorate('passwords', passwords)
}, { name: 'users', dependencies: ['config', 'storage', 'metrics'] })
