import path from 'node:path'
import { Writable } from 'node:stream'
import type { FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import { buildApp, REDACTED_LOG_PATHS } from '../../../src/app.ts'
import { writePrivateKeyFile } from '../../../src/tokens/keys.ts'
import { tempDir, testConfig } from '../../helper.ts'
import { startRedisServer, type RedisServer } from '../../redis-server.ts'

interface LogEntry { level: number, msg: string, redisPersistence?: string[] }

/** A redis-server with these settings (its files in a temp dir) and an app on it whose log lines the test reads. */
async function appOnRedis (t: Test, options: string[]): Promise<{ redis: RedisServer, logs: LogEntry[], app: FastifyInstance }> {
  const dir = await tempDir(t)
  const redis = await startRedisServer(['--dir', dir, ...options])
  t.teardown(() => redis.stop())
  const keyFile = path.join(dir, 'jwt.pem')
  await writePrivateKeyFile(keyFile, 'EdDSA')
  const logs: LogEntry[] = []
  const stream = new Writable({ write (chunk, _encoding, done) { logs.push(...chunk.toString().trim().split('\n').map((line: string) => JSON.parse(line))); done() } })
  const config = await testConfig(t, { REDIS_URL: redis.url, JWT_PRIVATE_KEY_FILE: keyFile, LOG_LEVEL: 'info' })
  const app = await buildApp(config, { level: 'info', redact: REDACTED_LOG_PATHS, stream })
  t.teardown(() => app.close())
  await app.ready()
  return { redis, logs, app }
}

/** The persistence check's warnings: not the readiness check's, which logs each outage of these tests' restarts (test/storage/redis/faults.test.ts tests those). */
const warnings = (logs: LogEntry[]) => logs.filter((entry) => entry.level === 40 && !entry.msg.endsWith('/health/ready answers 503'))

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * Resolves once every check sent so far has been answered and logged: the check is a command on
 * the app's own connection, sent as it becomes ready, and Redis answers a connection's commands
 * in order.
 */
async function checksAnswered (app: FastifyInstance): Promise<void> {
  await app.redis!.ping()
}

/** Waits until `count` warnings were logged (the check runs when the client becomes ready), then until no check is pending that could add one. */
async function settledWarnings (app: FastifyInstance, logs: LogEntry[], count: number): Promise<LogEntry[]> {
  for (const deadline = Date.now() + 20_000; warnings(logs).length < count && Date.now() < deadline;) await sleep(50)
  await checksAnswered(app)
  return warnings(logs)
}

/** The app's client's next 'ready' (events.once would reject on the errors it emits while reconnecting). */
const nextReady = (app: FastifyInstance) => new Promise((resolve) => app.redis!.once('ready', resolve))

/** Waits until the app's client is ready and its check answered. */
async function checked (app: FastifyInstance): Promise<void> {
  if (app.redis!.status !== 'ready') await nextReady(app)
  await checksAnswered(app)
}

t.test('a Redis that keeps nothing on disk is named at start and again on reconnect', async (t) => {
  const { redis, logs, app } = await appOnRedis(t, [])
  const [warning] = await settledWarnings(app, logs, 1)
  t.match(warning.msg, /^Redis may lose accounts and revocations: appendonly is no and save is empty: .*restart deletes every account and un-revokes every logged-out token\. Run it with appendonly yes and maxmemory-policy noeviction/)
  t.equal(warning.redisPersistence?.length, 1)

  await redis.stop()
  await redis.start()
  t.equal((await settledWarnings(app, logs, 2)).length, 2, 'checked again after the reconnect')
})

t.test('snapshots only, and an evicting policy, are each named', async (t) => {
  const { logs, app } = await appOnRedis(t, ['--save', '3600 1', '--maxmemory-policy', 'volatile-lru'])
  const [warning] = await settledWarnings(app, logs, 1)
  t.match(warning.redisPersistence, [
    /^appendonly is no \(only RDB snapshots, save "3600 1"\): a crash loses/,
    /^maxmemory-policy is volatile-lru: under memory pressure Redis evicts keys/
  ])
})

t.test('AOF and noeviction: no warning', async (t) => {
  const { logs, app } = await appOnRedis(t, ['--appendonly', 'yes', '--maxmemory-policy', 'noeviction'])
  await checked(app)
  t.same(warnings(logs), [])
})

t.test('CONFIG forbidden (as on managed Redis): said once, not on every reconnect', async (t) => {
  const { redis, logs, app } = await appOnRedis(t, ['--rename-command', 'CONFIG', '""'])
  const [warning] = await settledWarnings(app, logs, 1)
  t.match(warning.msg, /^Redis does not allow CONFIG GET \(.*unknown command.*\), so the service cannot check .*appendonly yes and maxmemory-policy noeviction/)
  const reconnected = nextReady(app)
  await redis.stop()
  await redis.start()
  await reconnected
  await checksAnswered(app)
  t.equal(warnings(logs).length, 1, 'not repeated after a reconnect')
})
