import { PassThrough } from 'node:stream'
import t from 'tap'
import { runKeysCli } from '../../src/cli/keys.ts'
import { loadConfig } from '../../src/config.ts'
import { withStores } from '../../src/storage/stores.ts'
import { sealKey } from '../../src/tokens/key-lifecycle.ts'
import { generatePrivateKeyPem, signingKeyFromPem, type SigningKey } from '../../src/tokens/keys.ts'
import { tempDir } from '../helper.ts'
import { FAST_ROTATION, keyEncryptionKey } from '../tokens/rotation-helper.ts'

/** The keys command in this process: its exit code and what it printed. */
async function keys (env: Record<string, string>, ...argv: string[]): Promise<{ code: number, stdout: string, stderr: string }> {
  const [stdout, stderr] = [new PassThrough(), new PassThrough()]
  const printed = { stdout: '', stderr: '' }
  stdout.on('data', (chunk: Buffer) => { printed.stdout += chunk.toString() })
  stderr.on('data', (chunk: Buffer) => { printed.stderr += chunk.toString() })
  const code = await runKeysCli(argv, { stdout, stderr, config: loadConfig(env) })
  return { code, ...printed }
}

/** A new Ed25519 key whose kid begins with '-' (one in 64 does). */
async function keyWithDashKid (): Promise<SigningKey> {
  for (;;) {
    const key = signingKeyFromPem(await generatePrivateKeyPem('EdDSA'), 'EdDSA', 'test')
    if (key.kid.startsWith('-')) return key
  }
}

t.test('keys revoke takes a kid that begins with "-", as keys list prints it, with or without "--" before it', async (t) => {
  const { file, kek } = await keyEncryptionKey(t)
  const env = { DATA_DIR: await tempDir(t), ...FAST_ROTATION, JWT_KEY_ENCRYPTION_KEY_FILE: file }
  const [first, second] = [await keyWithDashKid(), await keyWithDashKid()]
  const since = Date.now() - 1_000
  await withStores(loadConfig(env), async (stores) => await stores.durable.signingKeys.update(() =>
    [first, second].map((key) => ({ ...sealKey(kek, key), createdAt: since, activatesAt: since }))))

  t.match((await keys(env, 'list')).stdout, `\n${first.kid}  `, 'listed as it is')
  const revoked = await keys(env, 'revoke', first.kid)
  t.equal(revoked.code, 0, revoked.stderr)
  t.match(revoked.stdout, `Revoked ${first.kid}:`)
  const afterSeparator = await keys(env, 'revoke', '--', second.kid)
  t.equal(afterSeparator.code, 0, afterSeparator.stderr)
  t.match(afterSeparator.stdout, `Revoked ${second.kid}:`)
  t.notMatch((await keys(env, 'list')).stdout, first.kid, 'gone from the list')
})

t.test('a mistaken command line is a usage error (exit code 2) that says what is wrong', async (t) => {
  const env = { DATA_DIR: await tempDir(t) }
  const cases: Array<[string[], RegExp]> = [
    [[], /^No command given\n\nUsage: npm run keys/],
    [['rotate'], /^Unknown command "rotate"/],
    [['--if-missing'], /^No command given/],
    [['generate', '--force', 'key.pem'], /^Unknown option '--force'/],
    [['generate'], /^generate takes one argument/],
    [['revoke'], /^revoke takes one argument/],
    [['revoke', 'a', 'b'], /^revoke takes one argument/],
    [['list', '--if-missing'], /^--if-missing does not apply to list/]
  ]
  for (const [argv, message] of cases) {
    const result = await keys(env, ...argv)
    t.equal(result.code, 2, argv.join(' '))
    t.match(result.stderr, message, argv.join(' '))
  }
})
