// The floor for a Fastify route on this machine: no logger, no plugins, and one route at the login
// path that sends the very response the service sends a rate-limited attempt (status, headers and
// body), so the load generator, which shares the machine's cores, does the same work for both and
// the ratio measures what the service adds: limiter, hooks, metrics and the audit log line.
// GET /health/live only tells bench/login.mjs that it is listening. PORT and HOST from the environment.
import { randomUUID } from 'node:crypto'
import Fastify from 'fastify'

const REJECTION_HEADERS = {
  'ratelimit-limit': '5',
  'ratelimit-remaining': '0',
  'ratelimit-reset': '60',
  'retry-after': '60',
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'content-security-policy': "default-src 'none'; frame-ancestors 'none'",
  'cache-control': 'no-store'
}

const app = Fastify()
app.post('/api/auth/login', async (_request, reply) => {
  reply.code(429).headers(REJECTION_HEADERS).header('x-request-id', randomUUID())
  return { message: 'Too many login attempts, retry in 1 minute' }
})
app.get('/health/live', async () => ({ status: 'ok' }))
await app.listen({ port: Number(process.env.PORT), host: process.env.HOST })
