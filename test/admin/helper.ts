import { Writable } from 'node:stream'
import type { FastifyInstance } from 'fastify'
import type { Test } from 'tap'
import { buildAdminApp } from '../../src/admin/app.ts'
import { REDACTED_LOG_PATHS, buildApp } from '../../src/app.ts'
import { adminAudience } from '../../src/config.ts'
import { ADMIN_SCOPES } from '../../src/schemas/admin.ts'
import { testConfig } from '../helper.ts'
import { freePort } from '../redis-server.ts'
import { addClient, basic, postForm } from '../routes/oauth2/helper.ts'

/** The service and its admin API, each on its own loopback listener, as server.ts runs them. */
export interface AdminService {
  app: FastifyInstance
  admin: FastifyInstance
  /** The service's URL (JWT_ISSUER). */
  issuer: string
  /** The admin listener's URL, /admin/v1 included. */
  adminUrl: string
  /** Every log line of both, parsed. */
  logLines: () => Array<Record<string, any>>
  /** Every log line as written. */
  logText: () => string
}

/** The service with its admin listener, logging at info to lines a test reads; closed when the test ends. */
export async function adminService (t: Test, env: Record<string, string> = {}): Promise<AdminService> {
  const port = await freePort()
  const issuer = `http://127.0.0.1:${port}`
  const lines: string[] = []
  const stream = new Writable({ write (chunk, _encoding, done) { lines.push(...chunk.toString().trim().split('\n')); done() } })
  const app = await buildApp(await testConfig(t, { JWT_ISSUER: issuer, ...env }), { level: 'info', redact: REDACTED_LOG_PATHS, stream })
  t.teardown(() => app.close())
  await app.listen({ port, host: '127.0.0.1' })
  if (app.redis !== undefined && app.redis.status !== 'ready') await new Promise((resolve) => app.redis!.once('ready', resolve))
  const admin = await buildAdminApp(app)
  t.teardown(() => admin.close())
  await admin.listen({ port: 0, host: '127.0.0.1' })
  const { port: adminPort } = admin.server.address() as { port: number }
  return {
    app,
    admin,
    issuer,
    adminUrl: `http://127.0.0.1:${adminPort}/admin/v1`,
    logLines: () => lines.map((line) => JSON.parse(line)),
    logText: () => lines.join('\n')
  }
}

let clients = 0

/**
 * A token from the service's /oauth2/token for a new client of ADMIN_AUDIENCE (and any other
 * `audiences`) with these scopes: every admin scope unless told. Returns the token and the client id.
 */
export async function adminToken ({ app, issuer }: Pick<AdminService, 'app' | 'issuer'>, scopes: readonly string[] = ADMIN_SCOPES, audiences = [adminAudience(app.config)]): Promise<{ token: string, clientId: string }> {
  const clientId = `admin-caller-${++clients}`
  const secret = await addClient(app, { clientId, scopes: [...scopes], audiences })
  // One resource parameter per audience (RFC 8707): a token for all of them, not only the first.
  const form = new URLSearchParams([['grant_type', 'client_credentials'], ...audiences.map((audience) => ['resource', audience])]).toString()
  const granted = await postForm(`${issuer}/oauth2/token`, form, { authorization: basic(clientId, secret) })
  if (granted.status !== 200) throw new Error(`no admin token: ${granted.status} ${JSON.stringify(granted.body)}`)
  return { token: granted.body.access_token, clientId }
}

export interface AdminResponse {
  status: number
  headers: Headers
  body: any
}

/** One request to the admin API, JSON in and out. */
export async function call (url: string, method: string, token: string | undefined, body?: unknown, headers: Record<string, string> = {}): Promise<AdminResponse> {
  const response = await fetch(url, {
    method,
    headers: {
      ...(token !== undefined ? { authorization: `Bearer ${token}` } : {}),
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      ...headers
    },
    body: body !== undefined ? JSON.stringify(body) : undefined
  })
  const text = await response.text()
  return { status: response.status, headers: response.headers, body: text === '' ? undefined : JSON.parse(text) }
}
