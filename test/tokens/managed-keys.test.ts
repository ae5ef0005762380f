import { randomUUID } from 'node:crypto'
import { chmod, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import { loadConfig } from '../../src/config.ts'
import { withStores } from '../../src/storage/stores.ts'
import { KEY_SET_POLL_SECONDS, keyState, sealKey, type StoredSigningKey } from '../../src/tokens/key-lifecycle.ts'
import { generatePrivateKeyPem, signingKeyFromPem, writePrivateKeyFile } from '../../src/tokens/keys.ts'
import { addUser, buildTestApp, PASSWORD, runScript, tempDir, untilClock } from '../helper.ts'
import { freePort } from '../redis-server.ts'
import { behaviourTopologies, redisModeOn, redisTopologyTest } from '../redis-topologies.ts'
import { FAST_ROTATION, keyEncryptionKey } from './rotation-helper.ts'

// Managed keys as operators meet them: several replicas starting at once, an emergency revocation
// with the keys CLI, a wrong key-encryption key, and the migrations from key files and back.

/** Each replica rereads the keys every KEY_SET_POLL_SECONDS: a revocation reaches all of them within a second more (docs/key-rotation.md). */
const REVOCATION_PROMISE_MS = (KEY_SET_POLL_SECONDS + 1) * 1000

/** Embedded mode and one Redis topology: the settings of each, without a signing key file. */
const MODES: Array<[string, (t: Test) => Promise<Record<string, string>>]> = [
  ['embedded', async (t) => ({ DATA_DIR: await tempDir(t) })],
  ...behaviourTopologies().map((name): [string, (t: Test) => Promise<Record<string, string>>] => [`redis ${name}`, async (t) => {
    const { JWT_PRIVATE_KEY_FILE: _keyFile, ...env } = (await redisModeOn(name)).env
    return { ...env, DATA_DIR: await tempDir(t) }
  }])
]

/** Managed keys on these settings, with a key-encryption key of their own. */
async function managed (t: Test, env: Record<string, string>): Promise<Record<string, string>> {
  return { ...env, ...FAST_ROTATION, JWT_KEY_ENCRYPTION_KEY_FILE: (await keyEncryptionKey(t)).file }
}

const me = async (app: FastifyInstance, token: string) => await app.inject({ method: 'GET', url: '/api/auth/me', headers: { authorization: `Bearer ${token}` } })
const jwksKids = async (app: FastifyInstance): Promise<string[]> =>
  (await app.inject({ method: 'GET', url: '/.well-known/jwks.json' })).json().keys.map((key: { kid: string }) => key.kid)
const storedKeys = async (env: Record<string, string>): Promise<StoredSigningKey[]> =>
  await withStores(loadConfig(env), async (stores) => await stores.durable.signingKeys.list())
const keysCli = async (env: Record<string, string>, ...args: string[]) => await runScript('src/cli/keys.ts', args, { env })

// Two at a time: each test has its own store and key-encryption key, and most of their time is
// spent waiting for a key's lead or for the CLI.
t.jobs = 2

redisTopologyTest(t, 'replicas started at once add one key, and one next key when it is due', async (t, { env: { JWT_PRIVATE_KEY_FILE: _keyFile, ...env } }) => {
  const { file, kek } = await keyEncryptionKey(t)
  const settings = { ...env, ...FAST_ROTATION, JWT_KEY_ENCRYPTION_KEY_FILE: file }
  const replicas = await Promise.all(Array.from({ length: 5 }, async () => await buildTestApp(t, settings)))
  t.equal((await storedKeys(settings)).length, 1, 'one key stored')
  t.equal(new Set(replicas.map((replica) => replica.accessTokens.keyRing.signingKey.kid)).size, 1, 'every replica signs with it')

  // A key signing for 11 s of its 15: its successor is due (a lead of 5 s before it is to sign).
  const due = { ...settings, REDIS_KEY_PREFIX: `test:${randomUUID()}:` }
  const signing = signingKeyFromPem(await generatePrivateKeyPem('EdDSA'), 'EdDSA', 'test')
  const since = Date.now() - 11_000
  await withStores(loadConfig(due), async (stores) => await stores.durable.signingKeys.update(() => [{ ...sealKey(kek, signing), createdAt: since, activatesAt: since }]))
  const later = await Promise.all(Array.from({ length: 5 }, async () => await buildTestApp(t, due)))
  const keys = await storedKeys(due)
  t.equal(keys.length, 2, 'one next key, not one per replica')
  t.equal(keys[1].activatesAt, keys[1].createdAt + 5_000, 'published a lead before it signs')
  for (const replica of later) t.same(await jwksKids(replica), keys.map((key) => key.kid), 'every replica publishes the same two keys')
})

for (const [mode, modeEnv] of MODES) {
  t.test(`${mode}: keys revoke takes the signing key out at once; a new key signs and verifies everywhere`, async (t) => {
    const env = await managed(t, await modeEnv(t))
    // Embedded mode is one instance; in Redis mode the replicas share the keys.
    const replicas = mode === 'embedded' ? [await buildTestApp(t, env)] : [await buildTestApp(t, env), await buildTestApp(t, env)]
    await addUser(replicas[0], 'alice', PASSWORD)
    const revokedKid = replicas[0].accessTokens.keyRing.signingKey.kid
    const token = replicas[0].accessTokens.issueUserToken('alice').accessToken
    for (const replica of replicas) t.equal((await me(replica, token)).statusCode, 200, 'a token of the signing key verifies')
    const listed = await keysCli(env, 'list')
    t.match(listed.stdout, new RegExp(`^${revokedKid}  current `, 'm'), 'keys list shows the signing key')
    t.match(await replicas[0].metrics.registry.getSingleMetricAsString('auth_signing_key_age_seconds'), `auth_signing_key_age_seconds{kid="${revokedKid}",state="current"}`)

    const revoked = await keysCli(env, 'revoke', revokedKid)
    const revokedAt = Date.now()
    t.equal(revoked.code, 0, revoked.stderr)
    t.match(revoked.stdout, `Revoked ${revokedKid}`)
    for (const replica of replicas) {
      while ((await me(replica, token)).statusCode === 200) await sleep(50)
      const refusedAfter = Date.now() - revokedAt
      t.ok(refusedAfter <= REVOCATION_PROMISE_MS, `refused ${refusedAfter} ms after the CLI ended`)
      t.same((await me(replica, token)).json(), { message: 'Token was not signed by a known key' })
      t.notOk((await jwksKids(replica)).includes(revokedKid), 'out of the JWKS')
    }
    t.match(await replicas[0].metrics.registry.getSingleMetricAsString('auth_token_unknown_kid_total'), /auth_token_unknown_kid_total [1-9]/, 'counted as a token of an unknown key')
    for (const signer of replicas) {
      const fresh = signer.accessTokens.issueUserToken('alice')
      t.not(signer.accessTokens.keyRing.signingKey.kid, revokedKid, 'a new key signs')
      for (const verifier of replicas) t.equal((await me(verifier, fresh.accessToken)).statusCode, 200, 'its tokens verify on every replica')
    }
    t.equal((await keysCli(env, 'revoke', revokedKid)).code, 2, 'a kid that is no longer published is a usage error')
  })

  t.test(`${mode}: a replica with another key-encryption key refuses to start, naming the setting`, async (t) => {
    const env = await managed(t, await modeEnv(t))
    await buildTestApp(t, env)
    const other = { ...env, JWT_KEY_ENCRYPTION_KEY_FILE: (await keyEncryptionKey(t)).file }
    await t.rejects(buildTestApp(t, other), /^JWT_KEY_ENCRYPTION_KEY_FILE does not hold the key that encrypted the managed signing key/)
    const started = await runScript('src/server.ts', [], { env: { ...other, PORT: String(await freePort()), METRICS_PORT: '0', LOG_LEVEL: 'warn' }, timeoutMs: 30_000 })
    t.equal(started.code, 1)
    t.match(started.stderr, /auth-service failed to start: JWT_KEY_ENCRYPTION_KEY_FILE does not hold the key/)
  })

  t.test(`${mode}: from a key file to managed keys and back, no token is rejected`, async (t) => {
    // Settings every replica shares, whatever its keys: tokens live as long on each.
    const base = { ...await modeEnv(t), TOKEN_TTL_SECONDS: FAST_ROTATION.TOKEN_TTL_SECONDS }
    const keyFile = path.join(await tempDir(t), 'jwt.pem')
    await writePrivateKeyFile(keyFile, 'EdDSA')
    const files = await buildTestApp(t, { ...base, JWT_PRIVATE_KEY_FILE: keyFile })
    await addUser(files, 'alice', PASSWORD)
    const fileKid = files.accessTokens.keyRing.signingKey.kid

    // The rollout to managed keys: the file's key signs on until the next key has been published for
    // a lead, here 10 s, for the checks before the switch to fit in even on a busy machine.
    const env = { ...await managed(t, { ...base, JWT_PRIVATE_KEY_FILE: keyFile }), JWT_KEY_ROTATION_SECONDS: '30' }
    const keys = await buildTestApp(t, env)
    const [imported, next] = await storedKeys(env)
    t.equal(imported.kid, fileKid, 'the file\'s key is the first managed key')
    t.equal(keys.accessTokens.keyRing.signingKey.kid, fileKid, 'and signs on, as on the replicas not rolled out yet')
    t.same(await jwksKids(keys), [fileKid, next.kid], 'the next key is published at once')
    t.equal((await me(files, keys.accessTokens.issueUserToken('alice').accessToken)).statusCode, 200, 'a replica on the key file verifies the managed replica\'s tokens')
    // A token of the key file's replica shortly before the switch lives on past it.
    await untilClock(next.activatesAt - 2000)
    const fileToken = files.accessTokens.issueUserToken('alice').accessToken
    await untilClock(next.activatesAt)
    t.equal(keys.accessTokens.keyRing.signingKey.kid, next.kid, 'a lead later the next key signs')
    t.equal(keyState((await storedKeys(env))[0], Date.now()), 'retired', 'the file\'s key is retired')
    t.equal((await me(keys, fileToken)).statusCode, 200, 'its tokens stay valid')
    const managedToken = keys.accessTokens.issueUserToken('alice').accessToken

    // And back: the published keys as files.
    const exported = await keysCli(env, 'export', path.join(await tempDir(t), 'exported'))
    t.equal(exported.code, 0, exported.stderr)
    const settings = Object.fromEntries(exported.stdout.trim().split('\n').map((line) => line.split('=') as [string, string]))
    t.same(Object.keys(settings), ['JWT_PRIVATE_KEY_FILE', 'JWT_VERIFY_KEY_FILES'])
    const back = await buildTestApp(t, { ...base, ...settings })
    t.equal(back.accessTokens.keyRing.signingKey.kid, next.kid, 'the key file signs with the managed signing key')
    for (const token of [fileToken, managedToken]) t.equal((await me(back, token)).statusCode, 200, 'earlier tokens verify on key files')
    t.equal((await me(keys, back.accessTokens.issueUserToken('alice').accessToken)).statusCode, 200, 'and a managed replica verifies the key file\'s tokens')
  })
}

t.test('managed keys refuse settings that cannot work, naming them', async (t) => {
  const env = await managed(t, { DATA_DIR: await tempDir(t) })
  const kek = env.JWT_KEY_ENCRYPTION_KEY_FILE
  await chmod(kek, 0o644)
  await t.rejects(buildTestApp(t, env), /^JWT_KEY_ENCRYPTION_KEY_FILE: .* holds a key-encryption key that group or others can access \(mode 0644\)/)
  await writeFile(kek, 'not-32-bytes\n', { mode: 0o600 })
  await chmod(kek, 0o600)
  await t.rejects(buildTestApp(t, env), /^JWT_KEY_ENCRYPTION_KEY_FILE: .* must hold 32 random bytes as base64/)

  // A client whose tokens would outlive a key, registered before the rotation was set.
  const valid = await managed(t, { DATA_DIR: env.DATA_DIR })
  const before = await runScript('src/cli/clients.ts', ['add', 'long-lived', '--scope', 'orders:read', '--audience', 'https://orders.internal', '--ttl', '3600'], { env: { DATA_DIR: env.DATA_DIR } })
  t.equal(before.code, 0, before.stderr)
  await t.rejects(buildTestApp(t, valid), /^JWT_KEY_ROTATION_SECONDS \(15\) is shorter than the token lifetime of client long-lived \(3600 s\)/)
  const refused = await runScript('src/cli/clients.ts', ['add', 'longer', '--scope', 'orders:read', '--audience', 'https://orders.internal', '--ttl', '60'], { env: valid })
  t.equal(refused.code, 2)
  t.match(refused.stderr, /--ttl must not be longer than JWT_KEY_ROTATION_SECONDS \(15\)/, 'the clients CLI refuses such a client')
  t.equal((await keysCli({ DATA_DIR: env.DATA_DIR }, 'list')).code, 2, 'keys list without managed keys is a usage error')
})
