import { createHmac } from 'node:crypto'
import { chmod, readFile, stat, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { decodeProtectedHeader } from 'jose'
import t from 'tap'
import { EMBEDDED_KEY_FILE_NAME, generatePrivateKeyPem, signingKeyFromPem, writePrivateKeyFile } from '../../../src/tokens/keys.ts'
import { PASSWORD, addUser, buildTestApp, runScript, tempDir } from '../../helper.ts'

t.test('embedded mode generates a key on first start and keeps it across restarts', async (t) => {
  const first = await buildTestApp(t)
  const keyFile = path.join(first.config.DATA_DIR, EMBEDDED_KEY_FILE_NAME)
  t.equal((await stat(keyFile)).mode & 0o777, 0o600, 'readable by its owner only')
  await addUser(first, 'alice', PASSWORD)
  const token = first.accessTokens.issueUserToken('alice').accessToken
  await first.close()

  const second = await buildTestApp(t, { DATA_DIR: first.config.DATA_DIR })
  t.equal(second.accessTokens.keyRing.signingKey.kid, first.accessTokens.keyRing.signingKey.kid)
  t.equal((await second.accessTokens.verify(token, 'user')).sub, 'alice', 'a token from before the restart still verifies')
})

for (const algorithm of ['EdDSA', 'ES256', 'RS256'] as const) {
  t.test(`JWT_ALGORITHM=${algorithm} with a key file`, async (t) => {
    const keyFile = path.join(await tempDir(t), 'jwt.pem')
    await writePrivateKeyFile(keyFile, algorithm)
    const app = await buildTestApp(t, { JWT_ALGORITHM: algorithm, JWT_PRIVATE_KEY_FILE: keyFile })
    await addUser(app, 'alice', PASSWORD)
    const { accessToken } = app.accessTokens.issueUserToken('alice')
    const header = decodeProtectedHeader(accessToken)
    t.equal(header.alg, algorithm)
    t.equal(header.kid, app.accessTokens.keyRing.signingKey.kid)
    t.equal((await app.accessTokens.verify(accessToken, 'user')).sub, 'alice')
  })
}

t.test('a key that does not fit the algorithm, or no key at all, stops the start with a reason', async (t) => {
  const dir = await tempDir(t)
  const ecKey = path.join(dir, 'ec.pem')
  await writeFile(ecKey, await generatePrivateKeyPem('ES256'), { mode: 0o600 })
  await t.rejects(buildTestApp(t, { JWT_PRIVATE_KEY_FILE: ecKey }), /JWT_PRIVATE_KEY_FILE must hold an Ed25519 key for JWT_ALGORITHM=EdDSA/)
  await t.rejects(buildTestApp(t, { JWT_PRIVATE_KEY_FILE: path.join(dir, 'missing.pem') }), /JWT_PRIVATE_KEY_FILE cannot read .*missing.pem \(ENOENT\)/)
  const notAKey = path.join(dir, 'garbage.pem')
  await writeFile(notAKey, 'hello')
  await t.rejects(buildTestApp(t, { JWT_PRIVATE_KEY_FILE: notAKey }), /JWT_PRIVATE_KEY_FILE does not hold a PEM private key/)
})

t.test('verification accepts only the configured algorithm', async (t) => {
  const app = await buildTestApp(t)
  const { accessToken } = app.accessTokens.issueUserToken('alice')
  const [header, payload] = accessToken.split('.')
  const base64url = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url')
  const { kid } = app.accessTokens.keyRing.signingKey
  const REFUSED = { name: 'InvalidTokenError', message: 'Token signature or claims are invalid' }

  const unsigned = `${base64url({ alg: 'none', typ: 'JWT', kid })}.${payload}.`
  await t.rejects(app.accessTokens.verify(unsigned, 'user'), REFUSED, 'alg none is refused')

  const confusedHeader = base64url({ alg: 'HS256', typ: 'JWT', kid })
  const confusedSignature = createHmac('sha256', app.accessTokens.keyRing.signingKey.publicKeyPem).update(`${confusedHeader}.${payload}`).digest('base64url')
  await t.rejects(app.accessTokens.verify(`${confusedHeader}.${payload}.${confusedSignature}`, 'user'), REFUSED, 'HS256 with the public key as secret is refused')

  const tampered = Buffer.from(payload, 'base64url').toString().replace('alice', 'mallory')
  await t.rejects(app.accessTokens.verify(`${header}.${Buffer.from(tampered).toString('base64url')}.${accessToken.split('.')[2]}`, 'user'), REFUSED, 'a tampered payload is refused')
})

t.test('keys CLI writes a key, never overwrites one, and explains its usage', async (t) => {
  const file = path.join(await tempDir(t), 'keys', 'jwt.pem')
  const created = await runScript('src/cli/keys.ts', ['generate', file], { env: { JWT_ALGORITHM: 'ES256' } })
  t.equal(created.code, 0, created.stderr)
  t.match(created.stdout, /Wrote a new ES256 signing key/)
  const pem = await readFile(file, 'utf8')
  t.match(pem, /^-----BEGIN PRIVATE KEY-----/)
  t.equal((await stat(file)).mode & 0o777, 0o600)
  t.notMatch(created.stdout + created.stderr, /PRIVATE KEY/, 'the key is never printed')

  const again = await runScript('src/cli/keys.ts', ['generate', file])
  t.equal(again.code, 1)
  t.match(again.stderr, /already exists; refusing to overwrite/)
  const ifMissing = await runScript('src/cli/keys.ts', ['generate', file, '--if-missing'])
  t.equal(ifMissing.code, 0)
  t.equal(await readFile(file, 'utf8'), pem, 'the existing key is untouched')

  const usage = await runScript('src/cli/keys.ts', ['rotate'])
  t.equal(usage.code, 2)
  t.match(usage.stderr, /Unknown command "rotate"\n\nUsage: npm run keys -- <command>/)
})

t.test('a private key file that group or others can read refuses the start and says how to fix it', async (t) => {
  const dir = await tempDir(t)
  const signing = path.join(dir, 'signing.pem')
  await writePrivateKeyFile(signing, 'EdDSA')
  await chmod(signing, 0o640)
  await t.rejects(buildTestApp(t, { JWT_PRIVATE_KEY_FILE: signing }),
    new RegExp(`^JWT_PRIVATE_KEY_FILE: ${signing} holds a private key that group or others can access \\(mode 0640\\); make it readable by its owner only: chmod 600 ${signing}$`))
  await chmod(signing, 0o600)
  t.ok(await buildTestApp(t, { JWT_PRIVATE_KEY_FILE: signing }), 'starts once the mode is 0600')

  // Verify-only keys: a private one is held to the same rule, a public one may be world-readable.
  const rotatedPrivate = path.join(dir, 'rotated.pem')
  const pem = await generatePrivateKeyPem('EdDSA')
  await writeFile(rotatedPrivate, pem, { mode: 0o604 })
  await chmod(rotatedPrivate, 0o604)
  await t.rejects(buildTestApp(t, { JWT_PRIVATE_KEY_FILE: signing, JWT_VERIFY_KEY_FILES: rotatedPrivate }),
    /^JWT_VERIFY_KEY_FILES: .*rotated\.pem holds a private key that group or others can access \(mode 0604\); .*chmod 600 /)
  const rotatedPublic = path.join(dir, 'rotated.pub.pem')
  await writeFile(rotatedPublic, signingKeyFromPem(pem, 'EdDSA', 'test').publicKeyPem, { mode: 0o644 })
  await chmod(rotatedPublic, 0o644)
  const app = await buildTestApp(t, { JWT_PRIVATE_KEY_FILE: signing, JWT_VERIFY_KEY_FILES: rotatedPublic })
  t.equal(app.accessTokens.keyRing.verificationKeys.size, 2, 'a world-readable public key is accepted')

  // The key embedded mode generated is checked too: someone may have loosened it since.
  const embedded = await buildTestApp(t)
  const embeddedKey = path.join(embedded.config.DATA_DIR, EMBEDDED_KEY_FILE_NAME)
  await embedded.close()
  await chmod(embeddedKey, 0o644)
  await t.rejects(buildTestApp(t, { DATA_DIR: embedded.config.DATA_DIR }), /^DATA_DIR: .*jwt-signing-key\.pem holds a private key .*chmod 600 /)
})
