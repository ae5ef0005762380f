import { randomBytes } from 'node:crypto'
import { writeFile } from 'node:fs/promises'
import path from 'node:path'
import type { Test } from 'tap'
import { KeyEncryptionKey } from '../../src/tokens/key-encryption.ts'
import { runScript, startService, tempDir } from '../helper.ts'
import { freePort } from '../redis-server.ts'

/** The shortest rotation the service allows, and tokens that live less than its interval. */
export const FAST_ROTATION = { JWT_KEY_ROTATION_SECONDS: '15', TOKEN_TTL_SECONDS: '10' }

/** A key-encryption key as `openssl rand -base64 32` writes it, in a file of its owner only; and the key, for a test's own look at the store. */
export async function keyEncryptionKey (t: Test): Promise<{ file: string, kek: KeyEncryptionKey }> {
  const file = path.join(await tempDir(t), 'kek')
  const bytes = randomBytes(32)
  await writeFile(file, `${bytes.toString('base64')}\n`, { mode: 0o600 })
  return { file, kek: new KeyEncryptionKey(bytes) }
}

export interface Replica {
  url: string
  /** All it has printed so far. */
  output: () => string
}

/** The compiled service as `count` replicas started at once on these settings, each on a port of its own. */
export async function startReplicas (t: Test, env: Record<string, string>, count: number): Promise<Replica[]> {
  return await Promise.all(Array.from({ length: count }, async () => {
    const port = await freePort()
    const service = await startService(t, { HOST: '127.0.0.1', PORT: String(port), METRICS_PORT: '0', ...env })
    return { url: `http://127.0.0.1:${port}`, output: service.output }
  }))
}

/** Registers a client with the CLI on these settings; returns its secret. */
export async function addClient (env: Record<string, string>, clientId: string): Promise<string> {
  const added = await runScript('src/cli/clients.ts', ['add', clientId, '--scope', 'orders:read', '--audience', 'https://orders.internal'], { env })
  if (added.code !== 0) throw new Error(`clients add failed: ${added.stderr}`)
  return added.stdout.trim()
}

/** A client-credentials token from a replica. */
export async function grant (url: string, clientId: string, secret: string): Promise<string> {
  const response = await fetch(`${url}/oauth2/token`, {
    method: 'POST',
    headers: { authorization: `Basic ${btoa(`${clientId}:${secret}`)}`, 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'client_credentials' })
  })
  if (response.status !== 200) throw new Error(`the token endpoint answered ${response.status}: ${await response.text()}`)
  return ((await response.json()) as { access_token: string }).access_token
}

/** The service's JSON log lines that are about signing keys. */
export function keyLogLines (output: string): Array<{ kid: string, state: string, createdHere?: boolean, msg: string }> {
  return output.split('\n').filter((line) => line.startsWith('{')).map((line) => JSON.parse(line)).filter((line) => typeof line.kid === 'string' && typeof line.state === 'string')
}
