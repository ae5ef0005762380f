import { readFile, writeFile } from 'node:fs/promises'
import path from 'node:path'
import t, { type Test } from 'tap'
import { clientsFileJsonSchema } from '../../src/schemas/clients-file.ts'
import { loadConfig, type Config } from '../../src/config.ts'
import { withStores } from '../../src/storage/stores.ts'
import { buildTestApp, redisMode, runScript, tempDir } from '../helper.ts'
import { basic, clientsCli as run, FORM } from '../routes/oauth2/helper.ts'

t.test('the committed JSON Schema is what src/schemas/clients-file.ts generates', async (t) => {
  t.equal(await readFile('schemas/clients-file.schema.json', 'utf8'), clientsFileJsonSchema(), 'stale: run `npm run schemas` and commit it')
})

t.test('generate-secret: the secret on the first line, its sha256:<hex> on the second', async (t) => {
  const result = await runScript('src/cli/clients.ts', ['generate-secret'], { env: { DATA_DIR: await tempDir(t) } })
  t.equal(result.code, 0, result.stderr)
  const [secret, digest, rest] = result.stdout.split('\n')
  t.match(secret, /^[A-Za-z0-9_-]{43}$/)
  t.equal(digest, `sha256:${(await import('node:crypto')).createHash('sha256').update(secret).digest('hex')}`)
  t.equal(rest, '')
})

const HEX = (byte: string) => `sha256:${byte.repeat(64)}`

async function writeYaml (t: Test, text: string, name = 'clients.yaml'): Promise<string> {
  const file = path.join(await tempDir(t), name)
  await writeFile(file, text)
  return file
}

const stored = async (config: Config) => await withStores(config, async ({ durable: { clients } }) => await clients.list())

for (const mode of ['embedded', 'Redis'] as const) {
  t.test(`${mode}: apply prints a plan and applies it, idempotently; --dry-run, --prune, diff`, async (t) => {
    const env = mode === 'Redis' ? (await redisMode(t)).env : {}
    const config = loadConfig({ DATA_DIR: await tempDir(t), LOG_LEVEL: 'silent', ...env })
    const secret = (await run(config, 'generate-secret')).stdout.split('\n')
    const file = await writeYaml(t, `# yaml-language-server: $schema=../schemas/clients-file.schema.json
clients:
  - id: orders
    scopes: [orders:read]
    audiences: [https://orders.internal]
    ttlSeconds: 900
    secretDigests: [${secret[1]}]
  - id: ledger
    scopes: [ledger:read]
    audiences: [https://ledger.internal]
    federated: { issuer: https://kubernetes.default.svc, subject: "system:serviceaccount:ledger:default", jwksUri: https://10.0.0.1/openid/v1/jwks }
`)
    t.equal((await run(config, 'add', 'by-hand', '--scope', 'a', '--audience', 'b')).code, 0, 'a client the CLI made')

    const dry = await run(config, 'apply', file, '--dry-run')
    t.same([dry.code, dry.stdout], [0, '+ orders\n+ ledger\n2 to create, 0 to change, 0 to remove, 0 unchanged\n'])
    t.same((await stored(config)).map((client) => client.clientId), ['by-hand'], '--dry-run writes nothing')
    t.equal((await run(config, 'diff', file)).code, 1, 'diff: drift')

    const applied = await run(config, 'apply', file)
    t.same([applied.code, applied.stdout], [0, '+ orders\n+ ledger\n2 to create, 0 to change, 0 to remove, 0 unchanged\nApplied.\n'])
    const again = await run(config, 'apply', file)
    t.same([again.code, again.stdout], [0, '= orders\n= ledger\nNo changes (2 unchanged)\n'], 'idempotent')
    const diff = await run(config, 'diff', file)
    t.same([diff.code, diff.stdout], [0, '= orders\n= ledger\nNo changes (2 unchanged)\n'], 'diff: the store matches')
    t.match((await run(config, 'list')).stdout, /^orders .* ttl=900s {2}managed-by=clients-file$/m)

    // The file's digest is the stored secret's: the secret gets a token.
    const app = await buildTestApp(t, { DATA_DIR: config.DATA_DIR, ...env })
    const granted = await app.inject({ method: 'POST', url: '/oauth2/token', headers: { ...FORM, authorization: basic('orders', secret[0]) }, payload: 'grant_type=client_credentials' })
    t.equal(granted.statusCode, 200, granted.body)

    // A rotation: a second digest; a scope changed; ledger dropped from the file.
    const rotated = (await run(config, 'generate-secret')).stdout.split('\n')
    await writeFile(file, `clients:
  - id: orders
    scopes: [orders:read, orders:write]
    audiences: [https://orders.internal]
    exchangeAudiences: [https://ledger.internal]
    ttlSeconds: 900
    secretDigests: [${secret[1]}, ${rotated[1]}]
`)
    const changed = await run(config, 'apply', file)
    t.equal(changed.stdout, '~ orders (scopes, exchangeAudiences, secretDigests)\n0 to create, 1 to change, 0 to remove, 0 unchanged\nApplied.\n')
    t.notOk(changed.stdout.includes(rotated[1].slice(7)) || changed.stdout.includes(secret[1].slice(7)), 'never a digest in the plan')
    t.same((await stored(config)).map((client) => client.clientId), ['by-hand', 'ledger', 'orders'], 'without --prune, nothing is removed')
    t.equal((await run(config, 'diff', file)).code, 1, 'diff reports the client apply --prune would remove')
    const pruned = await run(config, 'apply', file, '--prune')
    t.equal(pruned.stdout, '- ledger\n= orders\n0 to create, 0 to change, 1 to remove, 1 unchanged\nApplied.\n')
    t.same((await stored(config)).map((client) => client.clientId), ['by-hand', 'orders'], '--prune removes only what the file manages')
    for (const rotatedSecret of [secret[0], rotated[0]]) {
      const response = await app.inject({ method: 'POST', url: '/oauth2/token', headers: { ...FORM, authorization: basic('orders', rotatedSecret) }, payload: 'grant_type=client_credentials' })
      t.equal(response.statusCode, 200, 'both secrets work during the rotation')
    }

    // The CLI leaves the file's clients alone unless forced.
    for (const argv of [['remove', 'orders'], ['rotate-secret', 'orders'], ['retire-secret', 'orders']]) {
      const refused = await run(config, ...argv)
      t.same([refused.code, refused.stderr], [1, 'Client "orders" is managed by the clients file: change it there (or pass --force to change it here until the next apply)\n'], argv.join(' '))
    }
    t.equal((await run(config, 'retire-secret', 'orders', '--force')).code, 0, 'break-glass')
    t.equal((await run(config, 'diff', file)).code, 1, 'the forced change is drift')
    t.match((await run(config, 'apply', file)).stdout, /^~ orders \(secretDigests\)$/m, 'and the next apply puts the file back')

    // The file never takes over a client it does not manage.
    await writeFile(file, 'clients:\n  - id: by-hand\n    scopes: [a]\n    audiences: [b]\n    jwksUri: https://keys.example.com/jwks.json\n')
    const takeover = await run(config, 'apply', file)
    t.same([takeover.code, takeover.stderr], [1, `${file}:2:5: clients: "by-hand" is a client the clients file does not manage (created by the CLI or the API): remove it first, or give the file's client another id\n`])
  })
}

t.test('a bad file changes nothing and names the file, line and field', async (t) => {
  const config = loadConfig({ DATA_DIR: await tempDir(t), LOG_LEVEL: 'silent' })
  const good = `  - id: orders\n    scopes: [orders:read]\n    audiences: [https://orders.internal]\n    secretDigests: [${HEX('a')}]\n`
  const cases: Array<[string, string]> = [
    ['clients:\n  - id: [unclosed\n', ':3:1: not valid YAML'],
    [`clients:\n${good}  - id: billing\n    scopes: [a]\n    audiences: [b]\n    secret: hunter2-plaintext\n`, ':9:5: clients[1].secret: a plaintext secret never goes in the clients file; declare its digest in secretDigests (clients generate-secret prints both)'],
    [`clients:\n${good}    scope: [typo]\n`, ':6:5: clients[0].scope: unknown field'],
    [`clients:\n${good}  - id: billing\n    audiences: [b]\n    jwksUri: https://keys.example.com/jwks.json\n`, ':6:5: clients[1].scopes: required field missing'],
    ['clients:\n  - id: orders\n    scopes: [orders:read]\n    audiences: [https://orders.internal]\n    secretDigests: [sha256:abc]\n', ':5:21: clients[0].secretDigests[0]: Expected string to match \'^sha256:[0-9a-f]{64}$\''],
    [`clients:\n${good}${good}`, ':6:5: clients[1].id: "orders" is declared twice (first at '],
    [`clients:\n${good}  - id: billing\n    scopes: [a]\n    audiences: [internal-services]\n    jwksUri: https://keys.example.com/jwks.json\n`, ':6:5: clients[1] (billing): internal-services is the audience of login tokens'],
    ['clients:\n  - id: orders\n    scopes: [orders:read]\n    audiences: [https://orders.internal]\n', ':2:5: clients[0] (orders): A client authenticates in exactly one way'],
    ['clients:\n  - id: orders\n    scopes: [orders:read]\n    audiences: [https://orders.internal]\n    jwks: { keys: [{ kty: OKP, crv: Ed25519, x: abc, d: private }] }\n', ':2:5: clients[0] (orders): The JWKS holds a key with members d: register public keys only'],
    ['clients: []\nextra: 1\n', ':2:1: extra: unknown field']
  ]
  for (const [text, expected] of cases) {
    const file = await writeYaml(t, text)
    const result = await run(config, 'apply', file)
    t.equal(result.code, 1, expected)
    t.equal(result.stdout, '', 'no plan')
    t.ok(result.stderr.startsWith(`${file}${expected}`), `${result.stderr.trim()} starts with ${expected}`)
    t.notOk(result.stderr.includes('hunter2'), 'never the secret itself')
  }
  t.same(await stored(config), [], 'nothing applied')
  const missing = await run(config, 'diff', path.join(config.DATA_DIR, 'none.yaml'))
  t.match(missing, { code: 1, stderr: /^Cannot read .*none\.yaml \(ENOENT\)/ })
})
