import { execFile } from 'node:child_process'
import { generateKeyPairSync } from 'node:crypto'
import { writeFile } from 'node:fs/promises'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { createRemoteJWKSet, jwtVerify } from 'jose'
import t from 'tap'
import { tempDir } from '../helper.ts'
import { addClient, listeningService } from '../routes/oauth2/helper.ts'

// The OAuth clients of Python and Go, from Debian's packages (python3-authlib 1.2,
// python3-requests-oauthlib 1.3, golang-golang-x-oauth2-dev), used as their documentation shows,
// against the service listening on a real port: each client authentication they support.

const HERE = path.dirname(fileURLToPath(import.meta.url))
const execFileAsync = promisify(execFile)

interface Case {
  client: string
  clientId: string
  /** What a resource server then finds in the token. */
  granted: { aud: string | string[], scope: string }
}

const ORDERS = 'https://orders.internal'
const BILLING = 'https://billing.internal'

const PYTHON_CASES: Case[] = [
  { client: 'authlib client_secret_basic', clientId: 'billing', granted: { aud: ORDERS, scope: 'orders:read' } },
  { client: 'authlib client_secret_post', clientId: 'billing', granted: { aud: ORDERS, scope: 'orders:read' } },
  // authlib signs exp = iat + 3600: this needs an assertion lifetime cap of an hour.
  { client: 'authlib private_key_jwt', clientId: 'reports', granted: { aud: ORDERS, scope: 'orders:read' } },
  { client: 'requests-oauthlib client_secret_basic', clientId: 'billing', granted: { aud: ORDERS, scope: 'orders:read orders:write' } },
  { client: 'requests-oauthlib client_secret_post', clientId: 'billing', granted: { aud: ORDERS, scope: 'orders:read orders:write' } }
]
const GO_CASES: Case[] = [
  { client: 'x/oauth2 AuthStyleInHeader', clientId: 'billing', granted: { aud: ORDERS, scope: 'orders:read' } },
  { client: 'x/oauth2 AuthStyleInParams', clientId: 'billing', granted: { aud: ORDERS, scope: 'orders:read' } },
  { client: 'x/oauth2 two resources', clientId: 'billing', granted: { aud: [ORDERS, BILLING], scope: 'orders:read' } }
]

/** Runs a client program to its end: its exit code and the JSON line it printed. */
async function run (file: string, args: string[], env: Record<string, string> = {}): Promise<{ code: number, printed: Record<string, unknown>, stderr: string }> {
  const { code, stdout, stderr } = await execFileAsync(file, args, { env: { ...process.env, ...env } }).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
    (error: { code: number, stdout: string, stderr: string }) => ({ code: error.code, stdout: error.stdout, stderr: error.stderr })
  )
  return { code, printed: JSON.parse(stdout.trim().split('\n').at(-1) || '{}'), stderr }
}

t.test('Python and Go OAuth clients get tokens a resource server accepts, with each client authentication they support', async (t) => {
  const { app, issuer } = await listeningService(t)
  const dir = await tempDir(t)
  const secret = await addClient(app, { clientId: 'billing' })
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 })
  const keyFile = path.join(dir, 'reports.pem')
  await writeFile(keyFile, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 })
  await addClient(app, { clientId: 'reports', jwks: { keys: [{ ...publicKey.export({ format: 'jwk' }), kid: 'reports-1', alg: 'RS256' }] }, scopes: ['orders:read'], audiences: [ORDERS] })
  const credential = (clientId: string) => clientId === 'reports' ? keyFile : secret

  // Built once, offline, against Debian's Go packages.
  const goClients = path.join(dir, 'go-clients')
  await execFileAsync('go', ['build', '-o', goClients, path.join(HERE, 'clients.go')], { env: { ...process.env, GO111MODULE: 'off', GOPATH: '/usr/share/gocode' } })
  const programs: Array<[Case[], (c: Case) => Promise<Awaited<ReturnType<typeof run>>>]> = [
    [PYTHON_CASES, async (c) => await run('/usr/bin/python3', [path.join(HERE, 'clients.py'), c.client, issuer, c.clientId, credential(c.clientId)])],
    [GO_CASES, async (c) => await run(goClients, [c.client, issuer, c.clientId, credential(c.clientId)])]
  ]

  const jwks = createRemoteJWKSet(new URL('/.well-known/jwks.json', issuer))
  for (const [cases, fetchToken] of programs) {
    for (const c of cases) {
      t.test(c.client, async (t) => {
        const { code, printed, stderr } = await fetchToken(c)
        t.equal(code, 0, 'gets a token', { printed, stderr })
        if (code !== 0) return
        for (const audience of [c.granted.aud].flat()) {
          const { payload } = await jwtVerify(String(printed.access_token), jwks, { issuer, audience, typ: 'at+jwt' })
          t.match(payload, { client_id: c.clientId, ...c.granted }, `${audience} accepts it`)
        }
      })
    }
  }

  t.test('authlib private_key_jwt with the audience of its documentation, the token endpoint, is refused', async (t) => {
    const { code, printed } = await run('/usr/bin/python3', [path.join(HERE, 'clients.py'), 'authlib private_key_jwt, aud the token endpoint', issuer, 'reports', keyFile])
    t.equal(code, 1)
    t.same(printed, { error: 'invalid_client', error_description: `Client assertion: "aud" must be the issuer ${issuer}, as its sole value` })
  })
})
