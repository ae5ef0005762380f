import { randomUUID } from 'node:crypto'
import path from 'node:path'
import type { FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import { writePrivateKeyFile } from '../../../src/tokens/keys.ts'
import { PASSWORD, addUser, buildTestApp, tempDir } from '../../helper.ts'
import { adminCall, startTopology, waitUntil, type RunningTopology, type TopologyName } from '../../redis-topologies.ts'

/**
 * Failover under load: two service replicas take logins while the Redis primary holding the
 * users is killed with SIGKILL. Logins may fail with 503 while Redis fails over, never with
 * anything else and never hang; then they succeed again without restarting anything, and nothing
 * acknowledged before the kill is lost.
 */

const RATE_LIMIT_MAX = 5
/** A request slower than this counts as a hang: the service answers 503 within about a second when Redis is away. */
const HANG_MS = 5000
const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

interface LoginResult {
  startedAt: number
  endedAt: number
  status: number | 'hang' | 'network error'
  /** The body of an answer that was neither 200 nor 503. */
  unexpected?: string
}

async function login (base: string, clientIp: string, password = PASSWORD, username = 'alice'): Promise<Response> {
  return await fetch(`${base}/api/auth/login`, {
    method: 'POST',
    // The apps trust 127.0.0.1 as a proxy, so each simulated client has its own address.
    headers: { 'content-type': 'application/json', 'x-forwarded-for': clientIp },
    body: JSON.stringify({ username, password }),
    signal: AbortSignal.timeout(HANG_MS)
  })
}

async function listen (app: FastifyInstance): Promise<string> {
  await app.listen({ port: 0, host: '127.0.0.1' })
  return `http://127.0.0.1:${(app.server.address() as { port: number }).port}`
}

/** Logins from ever new client addresses through both replicas, until stopped. */
function loginLoad (bases: string[], usernames: string[], workersPerReplica = 2): { results: LoginResult[], stop: () => Promise<void> } {
  const results: LoginResult[] = []
  let running = true
  let client = 0
  const workers = bases.flatMap((base) => Array.from({ length: workersPerReplica }, async () => {
    // eslint-disable-next-line no-unmodified-loop-condition -- stop() ends it
    while (running) {
      client++
      const startedAt = Date.now()
      let unexpected: string | undefined
      const status = await login(base, `10.${(client >> 16) & 255}.${(client >> 8) & 255}.${client & 255}`, PASSWORD, usernames[client % usernames.length]).then(
        async (response) => {
          const body = await response.text()
          if (response.status !== 200 && response.status !== 503) unexpected = body
          return response.status
        },
        (error: Error) => error.name === 'TimeoutError' ? 'hang' as const : 'network error' as const)
      results.push({ startedAt, endedAt: Date.now(), status, unexpected })
      // A client backs off a little after a failure rather than spin through the outage.
      if (status !== 200) await sleep(50)
    }
  }))
  return { results, stop: async () => { running = false; await Promise.all(workers) } }
}

/** Attempts from one client address until it is refused (429); returns how many were let through. */
async function attemptsUntilLimited (base: string, clientIp: string): Promise<number> {
  for (let admitted = 0; admitted < 20; admitted++) {
    const response = await login(base, clientIp, 'a wrong password for the limit', 'mallory')
    if (response.status === 429) return admitted
    if (response.status !== 401) throw new Error(`unexpected ${response.status} from the limited client`)
  }
  throw new Error('never limited')
}

async function failoverUnderLoad (t: Test, topologyName: TopologyName, killPrimary: (topology: RunningTopology, userKey: string) => Promise<void>): Promise<void> {
  const topology = await startTopology(t, topologyName)
  const keyFile = path.join(await tempDir(t), 'jwt.pem')
  await writePrivateKeyFile(keyFile, 'EdDSA')
  const env = {
    ...topology.env,
    REDIS_KEY_PREFIX: `test:${randomUUID()}:`,
    JWT_PRIVATE_KEY_FILE: keyFile,
    TRUST_PROXY: '127.0.0.1',
    RATE_LIMIT_MAX: String(RATE_LIMIT_MAX),
    RATE_LIMIT_WINDOW_MS: '600000',
    // Cheap but real argon2: the load is about Redis, not hashing.
    ARGON2_MEMORY_KIB: '8192',
    ARGON2_TIME_COST: '1',
    // The per-username throttle counts an attempt before the password is checked, and one that
    // then fails with 503 is never cleared. In a Cluster the throttle's key can live on a primary
    // that is up while the user's is down: hundreds of logins in the outage would throttle the
    // accounts under load. The most the setting allows, over 21 accounts, keeps this test about Redis.
    ACCOUNT_THROTTLE_THRESHOLD: '100'
  }
  const replicas = [await buildTestApp(t, env), await buildTestApp(t, env)]
  const bases = await Promise.all(replicas.map(listen))

  // Acknowledged before the kill: users (each write waited for a replica) and revocations.
  const usernames = Array.from({ length: 20 }, (_, i) => `user-${i}`)
  await addUser(replicas[0], 'alice', PASSWORD)
  for (const username of usernames) await addUser(replicas[0], username, PASSWORD)
  const revokedTokens: string[] = []
  for (let i = 0; i < 5; i++) {
    const token = (await (await login(bases[i % 2], `10.200.0.${i}`)).json()).data.accessToken as string
    const logout = await fetch(`${bases[(i + 1) % 2]}/api/auth/logout`, { method: 'POST', headers: { authorization: `Bearer ${token}` } })
    t.equal(logout.status, 200, 'revoked')
    revokedTokens.push(token)
  }
  // A client that has used 3 of its 5 attempts.
  for (let i = 0; i < 3; i++) t.equal((await login(bases[i % 2], '192.0.2.50', 'wrong', 'mallory')).status, 401)

  const load = loginLoad(bases, ['alice', ...usernames])
  await waitUntil('logins to succeed under load', async () => load.results.filter((result) => result.status === 200).length >= 20)
  const userKey = `${env.REDIS_KEY_PREFIX}user:alice`
  const killedAt = Date.now()
  await killPrimary(topology, userKey)

  // Run until logins have succeeded for 3 s in a row after the outage, for at most 60 s.
  await waitUntil('logins to succeed again', async () => {
    const sinceKill = load.results.filter((result) => result.startedAt > killedAt)
    const lastFailure = Math.max(killedAt, ...sinceKill.filter((result) => result.status !== 200).map((result) => result.endedAt))
    return sinceKill.some((result) => result.status !== 200) && sinceKill.filter((result) => result.startedAt > lastFailure && result.status === 200).length > 0 &&
      Date.now() - lastFailure > 3000
  }, 60_000).catch((error: Error) => { t.fail(error.message) })
  await load.stop()

  const results = load.results
  const statuses = new Set(results.map((result) => result.status))
  t.same([...statuses].sort(), [200, 503], 'every login answered 200 or 503: no 500, no hang, no dropped connection',
    { unexpected: results.filter((result) => result.status !== 200 && result.status !== 503).slice(0, 5) })
  const failures = results.filter((result) => result.status !== 200)
  const firstFailure = Math.min(...failures.map((result) => result.startedAt))
  const lastFailure = Math.max(...failures.map((result) => result.endedAt))
  t.ok(failures.every((result) => result.endedAt >= killedAt), 'no failure before the kill')
  const slowest = Math.max(...results.map((result) => result.endedAt - result.startedAt))
  const recoveredAfter = lastFailure - killedAt
  t.ok(recoveredAfter < 45_000, `logins succeed again ${recoveredAfter} ms after the kill`)
  t.ok(results.filter((result) => result.startedAt > lastFailure).every((result) => result.status === 200), 'and keep succeeding')
  t.comment(`${topologyName} failover: ${results.length} logins, ${failures.length} answered 503 between +${firstFailure - killedAt} ms and +${recoveredAfter} ms after SIGKILL; slowest answer ${slowest} ms`)

  for (const [i, base] of bases.entries()) t.equal((await fetch(`${base}/health/ready`)).status, 200, `replica ${i} ready again`)
  for (const username of ['alice', ...usernames]) t.equal((await replicas[1].users.find(username))?.username, username, `${username} survived`)
  for (const token of revokedTokens) {
    const me = await fetch(`${bases[0]}/api/auth/me`, { headers: { authorization: `Bearer ${token}` } })
    t.same([me.status, (await me.json()).message], [401, 'Token has been revoked'], 'the revocation survived')
  }
  const admittedAfter = await attemptsUntilLimited(bases[1], '192.0.2.50')
  const extra = 3 + admittedAfter - RATE_LIMIT_MAX
  t.ok(extra <= 1, `the per-IP limit holds: ${extra} attempt(s) beyond the limit across the failover`)
  t.comment(`${topologyName} failover: per-IP limit let ${extra} extra attempt(s) through`)
}

t.test('Sentinel: the primary is killed under load', async (t) => {
  await failoverUnderLoad(t, 'sentinel', async (topology) => {
    const [primary, replica] = topology.processes
    await primary.kill()
    // The sentinels promote the replica (and close its client connections on the way): the
    // failover itself, which the logins ride out.
    await waitUntil('the replica to be promoted', async () => await adminCall(replica.port, async (redis) => (await redis.info('replication')).includes('role:master')), 60_000)
  })
})

t.test('Cluster: the primary holding the users is killed under load', async (t) => {
  await failoverUnderLoad(t, 'cluster', async (topology, userKey) => {
    const primaries = topology.processes.slice(0, 3)
    // The one primary that answers for the key (the others redirect with MOVED).
    const owners = await Promise.all(primaries.map(async (primary) =>
      await adminCall(primary.port, async (redis) => await redis.exists(userKey) === 1).catch(() => false)))
    const owner = primaries[owners.indexOf(true)]
    t.ok(owner !== undefined, 'found the primary holding the users')
    await owner.kill()
  })
})
