import { once } from 'node:events'
import type { FastifyInstance } from 'fastify'
import type { Test } from 'tap'
import { runClientsCli } from '../../../src/cli/clients.ts'
import { generateSecret, secretDigest } from '../../../src/clients/secrets.ts'
import type { Client } from '../../../src/clients/client.ts'
import type { Config } from '../../../src/config.ts'
import { buildTestApp } from '../../helper.ts'
import { freePort } from '../../redis-server.ts'

/**
 * The service listening on a free loopback port, with JWT_ISSUER its own http URL, as an OAuth
 * client must reach it: openid-client discovers it from exactly that URL.
 */
export async function listeningService (t: Test, env: Record<string, string> = {}): Promise<{ app: FastifyInstance, issuer: string }> {
  const port = await freePort()
  const issuer = `http://127.0.0.1:${port}`
  const app = await buildTestApp(t, { JWT_ISSUER: issuer, ...env })
  await app.listen({ port, host: '127.0.0.1' })
  // Start-up does not wait for Redis; a test that registers clients at once must.
  if (app.redis !== undefined && app.redis.status !== 'ready') await once(app.redis, 'ready')
  return { app, issuer }
}

/**
 * Registers a client as the CLI does, without its wait for the next whole second (registrationTime):
 * `createdAt` is the current one's start, which only a token of an earlier client of the same id
 * could share, and a test's store has none. Returns its secret for secret clients.
 */
export async function addClient (app: FastifyInstance, client: Partial<Client> & { clientId: string }): Promise<string> {
  const secret = generateSecret()
  const now = Math.floor(Date.now() / 1000) * 1000
  await app.clients.create({
    scopes: ['orders:read', 'orders:write'],
    audiences: ['https://orders.internal', 'https://billing.internal'],
    ...(client.jwks === undefined && client.jwksUri === undefined && client.federated === undefined ? { secrets: [{ digest: secretDigest(secret), createdAt: now }] } : {}),
    createdAt: now,
    updatedAt: now,
    ...client
  })
  return secret
}

/** The clients command as an operator runs it against these settings: its exit code and what it printed. */
export async function clientsCli (config: Config, ...argv: string[]): Promise<{ code: number, stdout: string, stderr: string }> {
  let stdout = ''
  let stderr = ''
  const stream = (append: (chunk: string) => void) => ({ write: (chunk: string) => { append(chunk); return true } }) as NodeJS.WritableStream
  const code = await runClientsCli(argv, { stdout: stream((chunk) => { stdout += chunk }), stderr: stream((chunk) => { stderr += chunk }), config })
  return { code, stdout, stderr }
}

export const FORM = { 'content-type': 'application/x-www-form-urlencoded' }

export function basic (clientId: string, secret: string): string {
  return `Basic ${Buffer.from(`${encodeURIComponent(clientId)}:${encodeURIComponent(secret)}`).toString('base64')}`
}

/** POST a form to the service, as raw as a test of the protocol needs. */
export async function postForm (url: string, form: Record<string, string> | string, headers: Record<string, string> = {}): Promise<{ status: number, headers: Headers, body: any }> {
  const response = await fetch(url, { method: 'POST', headers: { ...FORM, ...headers }, body: typeof form === 'string' ? form : new URLSearchParams(form) })
  const text = await response.text()
  return { status: response.status, headers: response.headers, body: text === '' ? undefined : JSON.parse(text) }
}
