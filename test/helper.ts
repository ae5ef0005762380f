import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import type { FastifyInstance } from 'fastify'
import type { Test } from 'tap'
import { buildApp } from '../src/app.ts'
import { loadConfig, type Config } from '../src/config.ts'
import { writePrivateKeyFile } from '../src/tokens/keys.ts'
import { startRedisServer, type RedisServer } from './redis-server.ts'

/** A fresh, empty directory removed when the test ends. */
export async function tempDir (t: Test, prefix = 'auth-test-'): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), prefix))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  return dir
}

/** Waits until the clock reads `at` (ms since the epoch), for behaviour measured in time: a timer alone can end a millisecond or two early. */
export async function untilClock (at: number): Promise<void> {
  while (Date.now() < at) await sleep(at - Date.now())
}

/** Config as the service would load it from these environment variables, with a throwaway DATA_DIR. */
export async function testConfig (t: Test, env: Record<string, string> = {}): Promise<Config> {
  return loadConfig({ DATA_DIR: await tempDir(t), LOG_LEVEL: 'silent', ...env })
}

/** The real app, closed when the test ends. */
export async function buildTestApp (t: Test, env: Record<string, string> = {}): Promise<FastifyInstance> {
  const app = await buildApp(await testConfig(t, env), false)
  t.teardown(() => app.close())
  await app.ready()
  return app
}

/** Stores a user the way the CLI does: policy-checked elsewhere, hashed with the app's hasher. */
export async function addUser (app: FastifyInstance, username: string, password: string): Promise<void> {
  const now = Date.now()
  await app.users.create({ username, passwordHash: await app.passwords.hash(password), createdAt: now, updatedAt: now })
}

export const PASSWORD = 'correct horse battery staple'

export interface CliResult {
  code: number | null
  stdout: string
  stderr: string
}

const PROJECT_ROOT = fileURLToPath(new URL('..', import.meta.url))

/**
 * The program a test runs for one of the service's entry points: `src/<x>.ts` is its compiled
 * `dist/<x>.js` (built once before the suite, see test/before-suite.ts), run by plain node as
 * in production; any other script is TypeScript, run by node with the test's own flags.
 */
export function nodeArgs (script: string): string[] {
  const source = /^src\/(.+)\.ts$/.exec(script)
  return source !== null ? [path.join(PROJECT_ROOT, 'dist', `${source[1]}.js`)] : [...process.execArgv, script]
}

/**
 * What every process a test starts has, besides the settings the test gives it: PATH, and
 * MALLOC_ARENA_MAX as the image sets it, so the service does not restart itself to set it
 * (test/server.test.ts tests that restart; MALLOC_ARENA_MAX '' starts a process without it).
 */
const AS_THE_IMAGE_RUNS_IT = { PATH: process.env.PATH ?? '', MALLOC_ARENA_MAX: '1' }

/** Runs one of the service's entry points (src/cli/*.ts, src/server.ts) or a TypeScript file as its own process. */
export async function runScript (script: string, args: string[], options: { env?: Record<string, string>, input?: string, timeoutMs?: number } = {}): Promise<CliResult> {
  const child = spawn(process.execPath, [...nodeArgs(script), ...args], {
    env: { ...AS_THE_IMAGE_RUNS_IT, ...options.env },
    stdio: ['pipe', 'pipe', 'pipe']
  })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString() })
  child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
  child.stdin.end(options.input ?? '')
  // A process that does not exit in time is killed, so the test fails with what it printed.
  const timer = options.timeoutMs !== undefined ? setTimeout(() => child.kill('SIGKILL'), options.timeoutMs) : undefined
  const [code] = await once(child, 'exit') as [number | null]
  clearTimeout(timer)
  return { code, stdout, stderr }
}

/**
 * The compiled service as its own process with these settings (PORT among them), killed when the
 * test ends; resolves once /health/live answers, with `output()` all it has printed so far. Fails
 * with its output if it exits first or is not up within 60 s (generous: under a second on an idle
 * machine).
 */
export async function startService (t: Test, env: Record<string, string>): Promise<ChildProcess & { output: () => string }> {
  const child = spawn(process.execPath, nodeArgs('src/server.ts'), { env: { ...AS_THE_IMAGE_RUNS_IT, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => { output += chunk })
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => { output += chunk })
  t.teardown(() => { child.kill('SIGKILL') })
  const url = `http://${env.HOST ?? '127.0.0.1'}:${env.PORT}/health/live`
  for (const deadline = Date.now() + 60_000; !(await fetch(url).then((response) => response.ok, () => false));) {
    if (child.exitCode !== null) throw new Error(`the service exited with code ${child.exitCode} before it was up:\n${output}`)
    if (Date.now() > deadline) throw new Error(`the service was not up within 60 s:\n${output}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  return Object.assign(child, { output: () => output })
}

/**
 * Redis mode as replicas run it: a throwaway redis-server (stopped when the test ends) and one
 * shared signing key. Returns the server, to stop and restart it, and the environment to build
 * any number of replicas with.
 */
export async function redisMode (t: Test): Promise<{ redis: RedisServer, env: Record<string, string> }> {
  const redis = await startRedisServer()
  t.teardown(() => redis.stop())
  const keyFile = path.join(await tempDir(t), 'jwt.pem')
  await writePrivateKeyFile(keyFile, 'EdDSA')
  return { redis, env: { REDIS_URL: redis.url, JWT_PRIVATE_KEY_FILE: keyFile } }
}
