import { readdir, readFile } from 'node:fs/promises'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { createPrivateKey } from 'node:crypto'
import { createRemoteJWKSet, customFetch, decodeJwt, decodeProtectedHeader, jwtVerify } from 'jose'
import t, { type Test } from 'tap'
import { loadConfig } from '../../src/config.ts'
import { closeRedisConnection, openRedisConnection, redisTopology, scanKeys, type RedisConnection } from '../../src/storage/redis/connection.ts'
import { openStores } from '../../src/storage/stores.ts'
import { tempDir } from '../helper.ts'
import { redisModeOn, selectedTopologies } from '../redis-topologies.ts'
import { addClient, FAST_ROTATION, grant, keyEncryptionKey, keyLogLines, startReplicas, type Replica } from '../tokens/rotation-helper.ts'

// Rotation under load, as the consumers of a deployment see it: every replica issuing tokens
// without pause, consumers verifying each one with jose's createRemoteJWKSet and the cache the JWKS
// advertises, across three rotations of the shortest interval. Two replicas on every Redis
// topology, one in embedded mode, all at once (each mode takes about a minute of waiting).

const ROTATIONS = 3
const ISSUER = 'http://localhost:3000'
const AUDIENCE = 'https://orders.internal'
/**
 * Each replica is asked for a token this often: a steady load, about a hundred tokens per replica
 * in each key's 15 s, against leads and caches of seconds (every 50 ms cost the suite about 40
 * CPU-s more on a 2-core machine).
 */
const GRANT_EVERY_MS = 150
/** How long before its expiry each token is verified again: those of the last 7 s of a key's signing then meet it retired. */
const EXPIRING_CHECK_MS = 3000

interface Observed {
  /** The kids tokens were signed with, in the order they first signed. */
  signingKids: string[]
  tokens: number
  verifications: number
  rejected: Array<{ kid: string, when: 'issued' | 'about to expire', code: string }>
  /** Checks before expiry that a busy machine ran only once the token had expired: no verdict on the service. */
  lateChecks: number
  /** The most keys any JWKS response held, and the max-age each advertised. */
  mostKeys: number
  maxAges: Set<string>
  etags: number
  replicas: Replica[]
  /** The private keys of the managed keys stored at the end, as PEM, opened with the KEK. */
  privateKeys: string[]
  /** Every value the store holds: every Redis key of every prefix, or every file of DATA_DIR. */
  storedValues: string[]
}

/** Runs the replicas through the rotations under load, then reads what their store holds. */
async function observeRotations (t: Test, base: Record<string, string>, replicaCount: number): Promise<Observed> {
  const { file, kek } = await keyEncryptionKey(t)
  const env = { ...base, DATA_DIR: await tempDir(t), ...FAST_ROTATION, JWT_KEY_ENCRYPTION_KEY_FILE: file, LOG_LEVEL: 'info', TOKEN_GRANT_RATE_MAX: '100000' }
  const secret = await addClient(env, 'rotation')
  const replicas = await startReplicas(t, env, replicaCount)
  const observed: Observed = { signingKids: [], tokens: 0, verifications: 0, rejected: [], lateChecks: 0, mostKeys: 0, maxAges: new Set(), etags: 0, replicas, privateKeys: [], storedValues: [] }
  const etags = new Set<string>()
  // Every JWKS response a consumer gets goes through here.
  const observeJwks = async (url: string, init: RequestInit): Promise<Response> => {
    const response = await fetch(url, init)
    observed.maxAges.add(response.headers.get('cache-control') ?? '')
    etags.add(response.headers.get('etag') ?? '')
    observed.mostKeys = Math.max(observed.mostKeys, ((await response.clone().json()) as { keys: unknown[] }).keys.length)
    return response
  }
  const first = await fetch(`${replicas[0].url}/.well-known/jwks.json`)
  const maxAge = Number(/max-age=(\d+)/.exec(first.headers.get('cache-control') ?? '')?.[1])
  // One consumer per replica's JWKS, caching it as long as the replica says (jose's default cooldown
  // then keeps it from refetching for an unknown kid: a key must be known before it signs).
  const consumers = replicas.map((replica) => createRemoteJWKSet(new URL('/.well-known/jwks.json', replica.url), { cacheMaxAge: maxAge * 1000, [customFetch]: observeJwks }))
  const verifyEverywhere = async (token: string, when: Observed['rejected'][number]['when']): Promise<void> => {
    const expiresAt = (decodeJwt(token).exp as number) * 1000
    for (const consumer of consumers) {
      observed.verifications++
      await jwtVerify(token, consumer, { issuer: ISSUER, audience: AUDIENCE, typ: 'at+jwt' }).catch((error: { code?: string }) => {
        if (error.code === 'ERR_JWT_EXPIRED' && Date.now() >= expiresAt) observed.lateChecks++
        else observed.rejected.push({ kid: String(decodeProtectedHeader(token).kid), when, code: error.code ?? String(error) })
      })
    }
  }
  // Each token again shortly before it expires: by then its key has often retired.
  const expiringChecks: Array<Promise<void>> = []
  while (observed.signingKids.length <= ROTATIONS) {
    for (const replica of replicas) {
      const token = await grant(replica.url, 'rotation', secret)
      observed.tokens++
      const kid = String(decodeProtectedHeader(token).kid)
      if (!observed.signingKids.includes(kid)) observed.signingKids.push(kid)
      await verifyEverywhere(token, 'issued')
      const expiresAt = (decodeJwt(token).exp as number) * 1000
      expiringChecks.push(sleep(expiresAt - EXPIRING_CHECK_MS - Date.now()).then(async () => { await verifyEverywhere(token, 'about to expire') }))
    }
    await sleep(GRANT_EVERY_MS)
  }
  await Promise.all(expiringChecks)
  observed.etags = etags.size

  const config = loadConfig(env)
  const redis = redisTopology(config) !== undefined ? await openRedisConnection(config) : undefined
  try {
    const stored = await openStores(config, redis).durable.signingKeys.list()
    observed.privateKeys = stored.map((key) => kek.open(key.kid, key.sealedPrivateKey))
    observed.storedValues = redis !== undefined ? await everyRedisValue(redis) : await everyFile(config.DATA_DIR)
  } finally {
    if (redis !== undefined) await closeRedisConnection(redis)
  }
  return observed
}

/** Every value of every key on every primary, whatever its type. */
async function everyRedisValue (redis: RedisConnection): Promise<string[]> {
  const values: string[] = []
  for (const key of await scanKeys(redis, '*')) {
    const type = await redis.type(key)
    const value = type === 'string'
      ? await redis.get(key)
      : type === 'hash' ? await redis.hgetall(key) : type === 'set' ? await redis.smembers(key) : type === 'zset' ? await redis.zrange(key, 0, -1) : type === 'list' ? await redis.lrange(key, 0, -1) : type
    values.push(`${key} ${JSON.stringify(value)}`)
  }
  return values
}

async function everyFile (dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true })
  return await Promise.all(entries.filter((entry) => entry.isFile()).map(async (entry) => await readFile(path.join(entry.parentPath, entry.name), 'latin1')))
}

/** What gives a private key away, in the forms a store could hold it: PEM, its DER in base64, the raw key in base64url and hex. */
function privateKeyForms (pem: string): string[] {
  const der = createPrivateKey(pem).export({ type: 'pkcs8', format: 'der' })
  const d = createPrivateKey(pem).export({ format: 'jwk' }).d as string
  return ['PRIVATE KEY', der.toString('base64'), d, Buffer.from(d, 'base64url').toString('hex')]
}

t.test('keys rotate three times under load and no consumer rejects a valid token, on every mode at once', async (t) => {
  const modes: Array<[string, () => Promise<Observed>]> = [
    ['embedded', async () => await observeRotations(t, {}, 1)],
    ...selectedTopologies().map((name): [string, () => Promise<Observed>] => [`redis ${name}`, async () => {
      const { JWT_PRIVATE_KEY_FILE: _keyFile, ...env } = (await redisModeOn(name)).env
      return await observeRotations(t, env, 2)
    }])
  ]
  const outcomes = await Promise.all(modes.map(async ([mode, observe]) => [mode, await observe()] as const))

  for (const [mode, observed] of outcomes) {
    t.test(mode, async (t) => {
      t.ok(observed.signingKids.length > ROTATIONS, `${observed.signingKids.length} keys signed in turn (${ROTATIONS} rotations), ${observed.tokens} tokens from ${observed.replicas.length} replica(s), ${observed.verifications} verifications`)
      t.same(observed.rejected, [], `no consumer rejected a valid token, neither when issued nor as it was about to expire (${observed.lateChecks} checks ran too late to count)`)
      t.ok(observed.lateChecks < observed.verifications / 4, 'most checks ran in time')
      t.ok(observed.mostKeys <= 3, `the JWKS never held more than three keys (at most ${observed.mostKeys})`)
      t.same([...observed.maxAges], ['public, max-age=3'], 'cached for less than the 5 s lead')
      t.ok(observed.etags > ROTATIONS, `a new ETag as the keys changed (${observed.etags})`)

      const lines = observed.replicas.map((replica) => keyLogLines(replica.output()))
      const created = lines.flat().filter((line) => line.createdHere === true).map((line) => line.kid)
      t.same(created.filter((kid) => observed.signingKids.includes(kid)).sort(), [...observed.signingKids].sort(), 'each key that signed was created by one replica, once')
      t.equal(new Set(created).size, created.length, 'no key was created twice')
      const secondKey = observed.signingKids[1]
      for (const replicaLines of lines) {
        t.same(replicaLines.filter((line) => line.kid === secondKey).map((line) => line.state), ['next', 'current', 'retired', 'expired'], 'each replica logged each step of a key once')
      }

      t.ok(observed.privateKeys.length > 0, `the store holds ${observed.privateKeys.length} keys, opened with the KEK`)
      const leaks = observed.privateKeys.flatMap(privateKeyForms).filter((form) => observed.storedValues.some((value) => value.includes(form)))
      t.same(leaks, [], `no private key in clear in any of the ${observed.storedValues.length} stored values`)
    })
  }
})
