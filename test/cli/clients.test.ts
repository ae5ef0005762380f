import { writeFile } from 'node:fs/promises'
import path from 'node:path'
import { exportJWK, generateKeyPair } from 'jose'
import t from 'tap'
import { runClientsCli } from '../../src/cli/clients.ts'
import { loadConfig, type Config } from '../../src/config.ts'
import { withStores } from '../../src/storage/stores.ts'
import { redisMode, runScript, tempDir } from '../helper.ts'

async function run (config: Config, ...argv: string[]) {
  let stdout = ''
  let stderr = ''
  const stream = (append: (chunk: string) => void) => ({ write: (chunk: string) => { append(chunk); return true } }) as NodeJS.WritableStream
  const code = await runClientsCli(argv, { stdout: stream((chunk) => { stdout += chunk }), stderr: stream((chunk) => { stderr += chunk }), config })
  return { code, stdout, stderr }
}

t.test('as a process: the secret is the only line on stdout, so $(...) captures it', async (t) => {
  const dataDir = await tempDir(t)
  const result = await runScript('src/cli/clients.ts', ['add', 'billing', '--scope', 'orders:read orders:write', '--audience', 'https://orders.internal'], { env: { DATA_DIR: dataDir } })
  t.equal(result.code, 0, result.stderr)
  t.match(result.stdout, /^[A-Za-z0-9_-]{43}\n$/)
  t.match(result.stderr, /shown only this once/)
  const listed = await runScript('src/cli/clients.ts', ['list'], { env: { DATA_DIR: dataDir } })
  t.equal(listed.stdout, 'billing  client_secret (1 active secret)  scope="orders:read orders:write"  audience=https://orders.internal\n')
})

for (const mode of ['embedded', 'Redis'] as const) {
  t.test(`${mode}: every kind of client, list without secrets, bad arguments write nothing`, async (t) => {
    const env = mode === 'Redis' ? (await redisMode(t)).env : {}
    const config = loadConfig({ DATA_DIR: await tempDir(t), LOG_LEVEL: 'silent', ...env })
    const dir = await tempDir(t)
    const jwksFile = path.join(dir, 'jwks.json')
    const { publicKey } = await generateKeyPair('ES256')
    await writeFile(jwksFile, JSON.stringify({ keys: [{ ...await exportJWK(publicKey), kid: 'k1' }] }))

    const secret = (await run(config, 'add', 'billing', '--scope', 'orders:read', '--audience', 'https://orders.internal', '--audience', 'https://billing.internal', '--ttl', '300')).stdout.trim()
    const keyed = await run(config, 'add', 'reports', '--scope', 'orders:read', '--audience', 'https://orders.internal', '--jwks-file', jwksFile)
    t.equal(keyed.code, 0, keyed.stderr)
    t.equal(keyed.stdout, 'Added client "reports" (private_key_jwt)\n', 'no secret for a key client')
    t.equal((await run(config, 'add', 'fetcher', '--scope', 'a', '--audience', 'b', '--jwks-uri', 'https://keys.example.com/jwks.json')).code, 0)
    const server = await run(config, 'add', 'orders-api', '--scope', 'orders:introspect', '--audience', 'https://billing.internal',
      '--serves', 'https://orders.internal', '--serves', 'internal-services', '--serves', 'https://orders.internal',
      '--exchange-audience', 'https://billing.internal', '--exchange-audience', 'https://tax.internal')
    t.equal(server.code, 0, 'a resource server may serve JWT_AUDIENCE: it introspects login tokens')
    const federated = await run(config, 'add', 'shop', '--scope', 'orders:read', '--audience', 'https://orders.internal',
      '--federated-issuer', 'https://kubernetes.default.svc', '--federated-subject', 'system:serviceaccount:shop:default', '--federated-jwks-uri', 'https://10.0.0.1/openid/v1/jwks')
    t.equal(federated.stdout, 'Added client "shop" (workload identity)\n')

    const listed = await run(config, 'list')
    t.equal(listed.stdout.split('\n').length, 6)
    t.match(listed.stdout, /^billing {2}client_secret \(1 active secret\) {2}scope="orders:read" {2}audience=https:\/\/orders.internal,https:\/\/billing.internal {2}ttl=300s$/m)
    t.match(listed.stdout, /^orders-api {2}client_secret \(1 active secret\) {2}scope="orders:introspect" {2}audience=https:\/\/billing.internal {2}serves=https:\/\/orders.internal,internal-services {2}exchange-audience=https:\/\/billing.internal,https:\/\/tax.internal$/m)
    t.match(listed.stdout, /^shop {2}workload_identity \(https:\/\/kubernetes.default.svc system:serviceaccount:shop:default\)/m)
    t.notOk(listed.stdout.includes(secret), 'never the secret')
    const stored = await withStores(config, async ({ durable: { clients } }) => await clients.find('billing'))
    t.notOk(JSON.stringify(stored).includes(secret), 'the secret itself is not stored')
    t.notOk(listed.stdout.includes(stored!.secrets![0].digest), 'nor its digest listed')

    const bad: Array<[string[], RegExp, number]> = [
      [['add', 'x', '--audience', 'a'], /add needs --scope/, 2],
      [['add', 'x', '--scope', 'a'], /at least one --audience/, 2],
      [['add', 'x y', '--scope', 'a', '--audience', 'b'], /Client id must be/, 2],
      [['add', 'x', '--scope', 'a', '--audience', 'b', '--ttl', '10'], /Token lifetime/, 2],
      [['add', 'x', '--scope', 'a', '--audience', 'b', '--audience', 'internal-services'], /internal-services is the audience of login tokens \(JWT_AUDIENCE\)/, 2],
      [['add', 'x', '--scope', 'a', '--audience', 'b', '--serves', 'a b'], /Served resource "a b" must be/, 2],
      [['add', 'x', '--scope', 'a', '--audience', 'b', '--serves', ''], /Served resource "" must be/, 2],
      [['add', 'x', '--scope', 'a', '--audience', 'b', '--exchange-audience', 'a b'], /Exchange audience "a b" must be/, 2],
      [['add', 'x', '--scope', 'a', '--audience', 'b', '--exchange-audience', 'internal-services'], /no exchange gives a token for it/, 2],
      [['remove', 'billing', '--exchange-audience', 'b'], /--exchange-audience does not apply to remove/, 2],
      [['retire-secret', 'billing', '--serves', 'b'], /--serves does not apply to retire-secret/, 2],
      [['add', 'x', '--scope', 'a', '--audience', 'b', '--ttl', 'soon'], /--ttl must be a whole number/, 2],
      [['add', 'x', '--scope', 'a', '--audience', 'b', '--jwks-file', path.join(dir, 'missing.json')], /Cannot read --jwks-file/, 2],
      [['add', 'x', '--scope', 'a', '--audience', 'b', '--jwks-uri', 'http://keys.example.com/'], /https URL/, 2],
      [['add', 'x', '--scope', 'a', '--audience', 'b', '--jwks-uri', 'https://a/', '--jwks-file', jwksFile], /exactly one way/, 2],
      [['add', 'x', '--scope', 'a', '--audience', 'b', '--federated-issuer', 'https://k'], /needs --federated-issuer, --federated-subject and --federated-jwks-uri/, 2],
      [['add', 'x', '--scope', 'a', '--audience', 'b', '--old-expires-in', '5'], /--old-expires-in does not apply to add/, 2],
      [['add', 'x', '--scope', 'a', '--audience', 'b', '--scopes', 'c'], /Unknown option '--scopes'/, 2],
      [['add', 'billing', '--scope', 'a', '--audience', 'b'], /Client "billing" already exists/, 1],
      [['rotate-secret', 'reports'], /authenticates without a secret/, 1],
      [['rotate-secret', 'nobody'], /No such client "nobody"/, 1],
      [['retire-secret', 'billing'], /no older secret to retire/, 1],
      [['remove', 'nobody'], /No such client "nobody"/, 1],
      [['remove'], /remove needs exactly one client id/, 2],
      [['frobnicate', 'x'], /Unknown command "frobnicate"/, 2],
      [[], /No command given/, 2]
    ]
    for (const [argv, message, code] of bad) {
      const result = await run(config, ...argv)
      t.equal(result.code, code, argv.join(' '))
      t.match(result.stderr, message, argv.join(' '))
      t.equal(result.stdout, '', `${argv.join(' ')}: nothing on stdout`)
    }
    t.equal((await run(config, 'list')).stdout, listed.stdout, 'nothing was written by the failed commands')
    t.equal((await run(config, 'remove', 'fetcher')).code, 0)
    t.notMatch((await run(config, 'list')).stdout, /fetcher/)
  })
}
