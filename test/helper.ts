import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import type { FastifyInstance } from 'fastify'
import type { Test } from 'tap'
import { buildApp } from '../src/app.js'
import { loadConfig, type Config } from '../src/config.js'
import { writePrivateKeyFile } from '../src/tokens/keys.js'
import { startRedisServer, type RedisServer } from './redis-server.js'

/** A fresh, empty directory removed when the test ends. */
export async function tempDir (t: Test, prefix = 'auth-test-'): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), prefix))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  return dir
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

/** Runs one of the service's TypeScript entry points (src/cli/*.ts, src/server.ts) as its own process. */
export async function runScript (script: string, args: string[], options: { env?: Record<string, string>, input?: string } = {}): Promise<CliResult> {
  const child = spawn(process.execPath, [...process.execArgv, script, ...args], {
    env: { PATH: process.env.PATH ?? '', ...options.env },
    stdio: ['pipe', 'pipe', 'pipe']
  })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString() })
  child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
  child.stdin.end(options.input ?? '')
  const [code] = await once(child, 'exit') as [number | null]
  return { code, stdout, stderr }
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
