import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdir, open, readFile, rm } from 'node:fs/promises'
import http from 'node:http'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import type { TopologyName } from './redis-topologies.ts'

/**
 * The Redis topologies a whole tap run shares: one process (test/shared-topologies-process.ts)
 * holds them, started by tap's `before` script and stopped by its `after` script. It starts each
 * topology when a test file first asks for one, over a Unix socket in a directory named after the
 * tap runner, which is the parent of the before and after scripts and of every test file.
 */

/** Where the shared topologies of the run started by this runner live: the socket, the topologies' files, the signing key. */
export function sharedTopologiesDir (runnerPid = process.ppid): string {
  return path.join(tmpdir(), `auth-shared-topologies-${runnerPid}`)
}

/** The socket the process holding them listens on. */
export function sharedTopologiesSocket (dir: string): string {
  return path.join(dir, 'socket')
}

/** What a test gets to run the service on a shared topology. */
export interface SharedTopology {
  /** The service's Redis settings, without REDIS_KEY_PREFIX. */
  env: Record<string, string>
  /** One signing key for every replica in the run. */
  keyFile: string
}

/** Starts the process that holds the shared topologies (from tap's before script) and waits until it listens. */
export async function startSharedTopologies (): Promise<void> {
  const dir = sharedTopologiesDir()
  // A directory left by an earlier runner with the same pid holds nothing alive.
  await rm(dir, { recursive: true, force: true })
  await mkdir(dir)
  const log = await open(path.join(dir, 'process.log'), 'w')
  // The TypeScript loader tap gave this script, but not tap's process and coverage recording: it is no test.
  const loader = process.execArgv.filter((arg) => !arg.includes('@tapjs/processinfo'))
  const holder = spawn(process.execPath, [...loader, fileURLToPath(new URL('shared-topologies-process.ts', import.meta.url)), dir, String(process.ppid)], {
    detached: true, stdio: ['ignore', 'ignore', log.fd, 'ipc']
  })
  await log.close()
  const outcome = await Promise.race([once(holder, 'message').then(() => 'listening'), once(holder, 'exit').then(([code]) => `exited with code ${String(code)}`)])
  if (outcome !== 'listening') throw new Error(`the shared Redis topologies did not start: their process ${outcome}:\n${await readFile(path.join(dir, 'process.log'), 'utf8')}`)
  // It outlives this script, until the after script stops it (or the runner is gone).
  holder.disconnect()
  holder.unref()
}

/** Stops every shared topology (from tap's after script); nothing to do when their process is gone. */
export async function stopSharedTopologies (): Promise<void> {
  await new Promise<void>((resolve) => {
    http.request({ socketPath: sharedTopologiesSocket(sharedTopologiesDir()), method: 'POST', path: '/stop' }, (response) => { response.resume().on('end', resolve) })
      .on('error', () => resolve())
      .end()
  })
}

const asked = new Map<TopologyName, Promise<SharedTopology>>()

/** The run's instance of the topology, started when a test file first asks for it. */
export async function sharedTopology (name: TopologyName): Promise<SharedTopology> {
  let topology = asked.get(name)
  if (topology === undefined) {
    topology = new Promise((resolve, reject) => {
      http.get({ socketPath: sharedTopologiesSocket(sharedTopologiesDir()), path: `/${name}` }, (response) => {
        let body = ''
        response.setEncoding('utf8').on('data', (chunk: string) => { body += chunk }).on('end', () => {
          if (response.statusCode === 200) resolve(JSON.parse(body) as SharedTopology)
          else reject(new Error(`the shared ${name} topology did not start: ${body}`))
        })
      }).on('error', (error) => {
        reject(new Error(`no shared Redis topologies (${error.message}): run test files through tap, whose before script starts them`))
      })
    })
    asked.set(name, topology)
  }
  return await topology
}
