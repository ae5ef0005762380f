import { setTimeout as sleep } from 'node:timers/promises'
import t, { type Test } from 'tap'
import { RECHECK_MS } from '../../../src/storage/files/data-dir-watch.ts'
import { PASSWORD, runScript, startService, tempDir } from '../../helper.ts'
import { freePort } from '../../redis-server.ts'

// Dates are read in whole milliseconds on both sides.
const CLOCK_SLACK_MS = 2

/**
 * Sends `probe` until it answers true, and fails if one sent more than RECHECK_MS after `changedBy`
 * (when the change was known made) still answers false: that read should have seen the change.
 */
async function seenWithinBound (t: Test, changedBy: number, what: string, probe: () => Promise<boolean>): Promise<void> {
  while (true) {
    const sentAt = Date.now()
    if (await probe()) {
      t.pass(`${what}: seen ${Math.max(sentAt - changedBy, 0)} ms after the CLI exited`)
      return
    }
    if (sentAt - changedBy > RECHECK_MS + CLOCK_SLACK_MS) {
      t.fail(`${what}: a request sent ${sentAt - changedBy} ms after the CLI exited did not see the change`)
      return
    }
    await sleep(5)
  }
}

/** The embedded service as its own process, listening, with the CLI's environment to change its DATA_DIR from another process. */
async function embeddedService (t: Test): Promise<{ url: string, env: Record<string, string> }> {
  const env = { DATA_DIR: await tempDir(t), ARGON2_MEMORY_KIB: '8192', ARGON2_TIME_COST: '1' }
  const port = String(await freePort())
  await startService(t, {
    ...env,
    PORT: port,
    METRICS_PORT: '0',
    LOG_LEVEL: 'warn',
    // Probes run until the change is seen: no limit may answer them first.
    RATE_LIMIT_MAX: '100000',
    CLIENT_AUTH_FAILURE_MAX: '100000',
    ACCOUNT_THROTTLE_THRESHOLD: '100'
  })
  return { url: `http://127.0.0.1:${port}`, env }
}

async function cli (t: Test, script: string, args: string[], env: Record<string, string>, input?: string): Promise<{ stdout: string, exitedAt: number }> {
  const result = await runScript(script, args, { env, input })
  t.equal(result.code, 0, `${script} ${args.join(' ')} exits 0`, { stderr: result.stderr })
  return { stdout: result.stdout, exitedAt: Date.now() }
}

t.test('embedded: a client the CLI adds, from another process, gets tokens within the bound; once removed, none after it', async (t) => {
  const { url, env } = await embeddedService(t)
  const grant = async (secret: string) => (await fetch(`${url}/oauth2/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from(`billing:${secret}`).toString('base64')}` },
    body: 'grant_type=client_credentials'
  })).status

  // A grant first, so the service has read clients.json and holds it in memory when the CLI changes it.
  t.equal(await grant('nothing-yet'), 401)
  const added = await cli(t, 'src/cli/clients.ts', ['add', 'billing', '--scope', 'orders:read', '--audience', 'https://orders.internal'], env)
  const secret = added.stdout.trim()
  await seenWithinBound(t, added.exitedAt, 'the added client', async () => await grant(secret) === 200)

  const removed = await cli(t, 'src/cli/clients.ts', ['remove', 'billing'], env)
  await seenWithinBound(t, removed.exitedAt, 'the removed client', async () => await grant(secret) === 401)
  t.equal(await grant(secret), 401, 'and it stays refused')
})

t.test('embedded: a user the CLI adds, from another process, logs in within the bound; once removed, cannot after it', async (t) => {
  const { url, env } = await embeddedService(t)
  const login = async () => (await fetch(`${url}/api/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username: 'alice', password: PASSWORD })
  })).status

  t.equal(await login(), 401)
  const added = await cli(t, 'src/cli/users.ts', ['add', 'alice'], env, `${PASSWORD}\n`)
  await seenWithinBound(t, added.exitedAt, 'the added user', async () => await login() === 200)

  const removed = await cli(t, 'src/cli/users.ts', ['remove', 'alice'], env)
  await seenWithinBound(t, removed.exitedAt, 'the removed user', async () => await login() === 401)
  t.equal(await login(), 401, 'and stays unable to')
})
