import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { once } from 'node:events'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import { Redis } from 'ioredis'
import type { Test } from 'tap'
import { freePort } from './redis-server.ts'
import { sharedTopology } from './shared-topologies.ts'

/**
 * Real Redis topologies for tests, each made of redis-server processes on free ports in a temp
 * directory: one server, a Cluster of three primaries (each with a replica), and Sentinel (one
 * primary, one replica, three sentinels). Every one requires authentication: the service logs in
 * as an ACL user, the servers among themselves as the admin (default) user. A tap run starts each
 * once, shared by every test file (shared-topologies.ts); a test that kills a server starts its own.
 */

export type TopologyName = 'standalone' | 'cluster' | 'sentinel'
export const TOPOLOGY_NAMES: TopologyName[] = ['standalone', 'cluster', 'sentinel']

export const ADMIN_PASSWORD = 'admin-secret-3f9a'
export const SERVICE_USER = 'auth-service'
export const SERVICE_PASSWORD = 'service-secret-7c21'
export const SENTINEL_PASSWORD = 'sentinel-secret-51be'
export const SENTINEL_MASTER = 'auth-primary'
/** The commands the service's ACL user may run (README, "High availability"). */
const SERVICE_ACL = '+@all -@admin -@dangerous +info +wait +scan +role +cluster|slots'

/** A redis-server (or sentinel) process that a test may kill. */
export interface RedisProcess {
  port: number
  /** SIGKILL, as a crash. */
  kill (): Promise<void>
}

export interface RunningTopology {
  name: TopologyName
  /** The service's Redis settings (credentials through files), without REDIS_KEY_PREFIX. */
  env: Record<string, string>
  /** Standalone: the server. Sentinel: the primary, the replica, then the sentinels. Cluster: the primaries, then their replicas. */
  processes: RedisProcess[]
  stop (): Promise<void>
}

const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

/** Polls until `check` is true, or fails naming what was awaited. */
export async function waitUntil (what: string, check: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!await check().catch(() => false)) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(100)
  }
}

/** An admin client to one process, for the test's own checks; closed by the caller. */
export function adminClient (port: number, password = ADMIN_PASSWORD): Redis {
  return new Redis({ port, host: '127.0.0.1', password, lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => null })
}

export async function adminCall<T> (port: number, call: (redis: Redis) => Promise<T>, password = ADMIN_PASSWORD): Promise<T> {
  const redis = adminClient(port, password)
  redis.on('error', () => {})
  try {
    await redis.connect()
    return await call(redis)
  } finally {
    redis.disconnect()
  }
}

async function listening (port: number): Promise<boolean> {
  const net = await import('node:net')
  return await new Promise<boolean>((resolve) => {
    const socket = net.connect(port, '127.0.0.1')
    socket.once('connect', () => { socket.destroy(); resolve(true) })
    socket.once('error', () => resolve(false))
  })
}

/** Starts redis-server with these arguments and waits until it listens on `port`. */
async function spawnRedis (args: string[], port: number): Promise<RedisProcess & { child: ChildProcess }> {
  const child = spawn('redis-server', args, { stdio: 'ignore' })
  await waitUntil(`redis-server on ${port}`, async () => {
    if (child.exitCode !== null) throw new Error(`redis-server on ${port} exited with ${child.exitCode}`)
    return await listening(port)
  }, 10_000)
  return {
    port,
    child,
    async kill () {
      if (child.exitCode !== null || child.signalCode !== null) return
      const exited = once(child, 'exit')
      child.kill('SIGKILL')
      await exited
    }
  }
}

/** Arguments every data server gets: in-memory, loopback, the admin and the service's ACL user. */
function serverArgs (port: number, dir: string): string[] {
  return [
    '--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no',
    '--requirepass', ADMIN_PASSWORD, '--masterauth', ADMIN_PASSWORD,
    // The ACL the README recommends, on every key: each test has a key prefix of its own.
    '--user', SERVICE_USER, 'on', `>${SERVICE_PASSWORD}`, '~*', '&*', ...SERVICE_ACL.split(' ')
  ]
}

/** The service's credential files, as a mounted secret would provide them. */
async function credentialEnv (dir: string): Promise<Record<string, string>> {
  const passwordFile = path.join(dir, 'redis-password')
  await writeFile(passwordFile, `${SERVICE_PASSWORD}\n`, { mode: 0o600 })
  return { REDIS_USERNAME: SERVICE_USER, REDIS_PASSWORD_FILE: passwordFile }
}

async function startStandalone (dir: string): Promise<RunningTopology> {
  const port = await freePort()
  const server = await spawnRedis(serverArgs(port, dir), port)
  return {
    name: 'standalone',
    env: { REDIS_URL: `redis://127.0.0.1:${port}`, ...await credentialEnv(dir) },
    processes: [server],
    stop: async () => { await server.kill() }
  }
}

async function startCluster (dir: string): Promise<RunningTopology> {
  const nodes: Array<RedisProcess & { child: ChildProcess }> = []
  for (let i = 0; i < 6; i++) {
    const [port, busPort] = [await freePort(), await freePort()]
    const nodeDir = await mkdtemp(path.join(dir, `node-${i}-`))
    nodes.push(await spawnRedis([...serverArgs(port, nodeDir), '--cluster-enabled', 'yes', '--cluster-port', String(busPort),
      '--cluster-config-file', path.join(nodeDir, 'nodes.conf'), '--cluster-node-timeout', '2000'], port))
  }
  const stop = async (): Promise<void> => { await Promise.all(nodes.map(async (node) => { await node.kill() })) }
  try {
    // The first three become primaries, each of the last three a replica of one of them.
    await promisify(execFile)('redis-cli', ['-a', ADMIN_PASSWORD, '--no-auth-warning', '--cluster', 'create',
      ...nodes.map((node) => `127.0.0.1:${node.port}`), '--cluster-replicas', '1', '--cluster-yes'])
    for (const node of nodes) {
      await waitUntil(`cluster node ${node.port} ok`, async () => await adminCall(node.port, async (redis) => {
        const info = await redis.cluster('INFO') as string
        const replication = await redis.info('replication')
        return info.includes('cluster_state:ok') && !replication.includes('master_link_status:down') && (replication.includes('role:master') ? replication.includes('connected_slaves:1') : true)
      }))
    }
  } catch (error) {
    await stop()
    throw error
  }
  // Primaries first, in the order redis-cli assigned them.
  const roles = await Promise.all(nodes.map(async (node) => await adminCall(node.port, async (redis) => (await redis.info('replication')).includes('role:master'))))
  const ordered = [...nodes.filter((_, i) => roles[i]), ...nodes.filter((_, i) => !roles[i])]
  return {
    name: 'cluster',
    env: { REDIS_CLUSTER_NODES: ordered.slice(0, 3).map((node) => `127.0.0.1:${node.port}`).join(','), ...await credentialEnv(dir) },
    processes: ordered,
    stop
  }
}

async function startSentinel (dir: string): Promise<RunningTopology> {
  const [primaryPort, replicaPort] = [await freePort(), await freePort()]
  const primary = await spawnRedis(serverArgs(primaryPort, await mkdtemp(path.join(dir, 'primary-'))), primaryPort)
  const replica = await spawnRedis([...serverArgs(replicaPort, await mkdtemp(path.join(dir, 'replica-'))), '--replicaof', '127.0.0.1', String(primaryPort)], replicaPort)
  const sentinels: Array<RedisProcess & { child: ChildProcess }> = []
  const stop = async (): Promise<void> => { await Promise.all([primary, replica, ...sentinels].map(async (node) => { await node.kill() })) }
  try {
    for (let i = 0; i < 3; i++) {
      const port = await freePort()
      const file = path.join(dir, `sentinel-${i}.conf`)
      // A sentinel rewrites its own configuration file, so each gets one.
      await writeFile(file, [
        `port ${port}`, 'bind 127.0.0.1', `dir ${dir}`,
        `requirepass ${SENTINEL_PASSWORD}`, `sentinel sentinel-pass ${SENTINEL_PASSWORD}`,
        `sentinel monitor ${SENTINEL_MASTER} 127.0.0.1 ${primaryPort} 2`,
        `sentinel auth-pass ${SENTINEL_MASTER} ${ADMIN_PASSWORD}`,
        `sentinel down-after-milliseconds ${SENTINEL_MASTER} 1500`,
        `sentinel failover-timeout ${SENTINEL_MASTER} 10000`, ''
      ].join('\n'))
      sentinels.push(await spawnRedis([file, '--sentinel'], port))
    }
    await waitUntil('replica in sync', async () => await adminCall(replicaPort, async (redis) => (await redis.info('replication')).includes('master_link_status:up')))
    for (const sentinel of sentinels) {
      await waitUntil(`sentinel ${sentinel.port} knows the replica and the other sentinels`, async () => await adminCall(sentinel.port, async (redis) => {
        const replicas = await redis.call('SENTINEL', 'REPLICAS', SENTINEL_MASTER) as unknown[]
        const others = await redis.call('SENTINEL', 'SENTINELS', SENTINEL_MASTER) as unknown[]
        return replicas.length === 1 && others.length === 2
      }, SENTINEL_PASSWORD))
    }
  } catch (error) {
    await stop()
    throw error
  }
  const sentinelPasswordFile = path.join(dir, 'sentinel-password')
  await writeFile(sentinelPasswordFile, SENTINEL_PASSWORD, { mode: 0o600 })
  return {
    name: 'sentinel',
    env: {
      REDIS_SENTINELS: sentinels.map((sentinel) => `127.0.0.1:${sentinel.port}`).join(','),
      REDIS_SENTINEL_MASTER: SENTINEL_MASTER,
      REDIS_SENTINEL_PASSWORD_FILE: sentinelPasswordFile,
      ...await credentialEnv(dir)
    },
    processes: [primary, replica, ...sentinels],
    stop
  }
}

export interface TlsRedis {
  port: number
  /** The service's settings: a rediss:// URL, the test CA, a client certificate, the ACL user. */
  env: Record<string, string>
}

/**
 * A redis-server that speaks only TLS, with a certificate from a CA made for this test, and that
 * requires client certificates from that CA too.
 */
export async function startTlsRedis (t: Test): Promise<TlsRedis> {
  const dir = await mkdtemp(path.join(tmpdir(), 'auth-redis-tls-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  const file = (name: string): string => path.join(dir, name)
  const openssl = async (...args: string[]): Promise<void> => { await promisify(execFile)('openssl', args) }
  const newKey = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes']
  await openssl('req', '-x509', ...newKey, '-days', '1', '-subj', '/CN=auth-test-ca', '-keyout', file('ca.key'), '-out', file('ca.pem'))
  await writeFile(file('server.ext'), 'subjectAltName=IP:127.0.0.1\n')
  for (const [name, subject, extensions] of [['server', '/CN=127.0.0.1', ['-extfile', file('server.ext')]], ['client', `/CN=${SERVICE_USER}`, []]] as const) {
    await openssl('req', ...newKey, '-subj', subject, '-keyout', file(`${name}.key`), '-out', file(`${name}.csr`))
    await openssl('x509', '-req', '-in', file(`${name}.csr`), '-CA', file('ca.pem'), '-CAkey', file('ca.key'), '-CAcreateserial', '-days', '1', '-out', file(`${name}.pem`), ...extensions)
  }
  const port = await freePort()
  const server = await spawnRedis([...serverArgs(port, dir), '--port', '0', '--tls-port', String(port),
    '--tls-cert-file', file('server.pem'), '--tls-key-file', file('server.key'), '--tls-ca-cert-file', file('ca.pem'), '--tls-auth-clients', 'yes'], port)
  t.teardown(async () => { await server.kill() })
  return {
    port,
    env: {
      REDIS_URL: `rediss://127.0.0.1:${port}`,
      REDIS_TLS_CA_FILE: file('ca.pem'),
      REDIS_TLS_CERT_FILE: file('client.pem'),
      REDIS_TLS_KEY_FILE: file('client.key'),
      ...await credentialEnv(dir)
    }
  }
}

/** Starts the topology's processes, their files in `dir`; stopping them is the caller's. */
export async function launchTopology (name: TopologyName, dir: string): Promise<RunningTopology> {
  const starters: Record<TopologyName, (dir: string) => Promise<RunningTopology>> = {
    standalone: startStandalone,
    cluster: startCluster,
    sentinel: startSentinel
  }
  return await starters[name](dir)
}

/** Starts a topology of its own for this test, to kill its processes (stopped, and its directory removed, when the test ends). */
export async function startTopology (t: Test, name: TopologyName): Promise<RunningTopology> {
  const dir = await mkdtemp(path.join(tmpdir(), `auth-redis-${name}-`))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  const topology = await launchTopology(name, dir)
  t.teardown(async () => { await topology.stop() })
  return topology
}

export interface RedisModeUnderTest {
  /** The run's shared instance: its processes are not a test's to stop. */
  topology: Pick<RunningTopology, 'name' | 'env'>
  /** Settings for any number of replicas: the topology, a key prefix of this test's own, the run's signing key. */
  env: Record<string, string>
}

/**
 * Which topologies to run: all, or those named in REDIS_TOPOLOGIES (comma-separated) to iterate
 * quickly on one.
 */
export function selectedTopologies (): TopologyName[] {
  const wanted = (process.env.REDIS_TOPOLOGIES ?? '').split(',').filter((name) => name !== '')
  return wanted.length === 0 ? TOPOLOGY_NAMES : TOPOLOGY_NAMES.filter((name) => wanted.includes(name))
}

/**
 * The one topology a behaviour test (a login, a CLI, a grant) runs on besides embedded mode: the
 * first selected. What differs between topologies is the stores', which the store tests and the
 * tests of several replicas run on every one.
 */
export function behaviourTopologies (): TopologyName[] {
  return selectedTopologies().slice(0, 1)
}

/**
 * A Redis-mode test run once per topology, each run a subtest named with the topology:
 * `redisTopologyTest(t, 'two replicas share one limit', async (t, { env }) => { ... })`.
 * Each run gets its own key prefix, so runs on a shared topology do not see each other's keys.
 */
export function redisTopologyTest (t: Test, name: string, fn: (t: Test, mode: RedisModeUnderTest) => Promise<void>): void {
  for (const topologyName of selectedTopologies()) {
    t.test(`${name} [${topologyName}]`, async (t) => { await fn(t, await redisModeOn(topologyName)) })
  }
}

/** Redis mode on the run's shared instance of the topology, with a key prefix of its own. */
export async function redisModeOn (name: TopologyName): Promise<RedisModeUnderTest> {
  const { env, keyFile } = await sharedTopology(name)
  return { topology: { name, env }, env: { ...env, REDIS_KEY_PREFIX: `test:${randomUUID()}:`, JWT_PRIVATE_KEY_FILE: keyFile } }
}
