// The floor for any Fastify route on this machine: no logger, no plugins, and one trivial route
// at the login path, so it receives byte for byte the requests the 429 flood sends the service.
// GET /health/live only tells bench/login.mjs that it is listening. PORT and HOST from the environment.
import Fastify from 'fastify'

const app = Fastify()
app.post('/api/auth/login', async () => ({ message: 'ok' }))
app.get('/health/live', async () => ({ status: 'ok' }))
await app.listen({ port: Number(process.env.PORT), host: process.env.HOST })
