// The least a login can cost on this machine, for bench/login.mjs to measure beside the service
// and raw argon2.verify: a Fastify route at the login path that runs argon2.verify on the password
// it is sent, with the service's parameters, as many verifications at once as the service hashes
// (the rest wait their turn in the service's HashingQueue) on a libuv pool of the same size and
// priority, and answers 200 with a fixed body. No limits, no account throttle, no user lookup, no
// token, no audit line or metrics: not a login, only the floor under one, so that "login floor /
// raw" shows what serving logins over HTTP beside the load generator costs the hashes, and
// "logins / floor" what the service's own work does. GET /health/live only tells the bench that it
// is listening. From the environment: PORT, HOST, the service's ARGON2_MEMORY_KIB, ARGON2_TIME_COST
// and ARGON2_PARALLELISM, FLOOR_IN_FLIGHT (its hashing threads), FLOOR_PASSWORD (the one that
// verifies) and UV_THREADPOOL_SIZE, all set by bench/login.mjs.
import argon2 from 'argon2'
import Fastify from 'fastify'
import { lowerThreadpoolPriority } from '../dist/users/argon2-threads.js'
import { HashingQueue } from '../dist/users/hashing-queue.js'

const [memoryCost, timeCost, parallelism, inFlight] = ['ARGON2_MEMORY_KIB', 'ARGON2_TIME_COST', 'ARGON2_PARALLELISM', 'FLOOR_IN_FLIGHT'].map((name) => Number(process.env[name]))
const password = process.env.FLOOR_PASSWORD
const hash = await argon2.hash(password, { type: argon2.argon2id, memoryCost, timeCost, parallelism })
await lowerThreadpoolPriority()

// The service's own queue, without deadlines: every login waits its turn, none is refused.
const queue = new HashingQueue({ threads: inFlight, queueMax: 0 })

const app = Fastify()
app.post('/api/auth/login', async (request, reply) => {
  const valid = await queue.run(() => argon2.verify(hash, String(request.body?.password ?? '')))
  reply.code(valid ? 200 : 401)
  return { message: valid ? 'Authentication successful' : 'Invalid username or password' }
})
app.get('/health/live', async () => ({ status: 'ok' }))
await app.listen({ port: Number(process.env.PORT), host: process.env.HOST })
