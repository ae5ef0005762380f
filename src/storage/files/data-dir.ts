import { access, constants, mkdir, stat, unlink } from 'node:fs/promises'
import { once } from 'node:events'
import { connect, createServer, type Server } from 'node:net'
import path from 'node:path'

/**
 * Makes sure DATA_DIR is a directory this process can write, creating it and any missing parents
 * one level at a time (`mkdir -p` in Node loops forever on a path like /proc/nope). Errors name
 * DATA_DIR, its value and what would work.
 */
export async function prepareDataDir (dataDir: string): Promise<void> {
  const fail = (problem: string) => new Error(`DATA_DIR=${dataDir} ${problem}: set DATA_DIR to a directory this user can write, or one that can be created`)
  const missing: string[] = []
  let existing = path.resolve(dataDir)
  while (true) {
    const stats = await stat(existing).catch((error: NodeJS.ErrnoException) => {
      // ENOTDIR: a parent is a file, which the walk up finds and names.
      if (error.code === 'ENOENT' || error.code === 'ENOTDIR') return undefined
      throw fail(`cannot be read (${error.code ?? error.message} on ${existing})`)
    })
    if (stats !== undefined) {
      if (!stats.isDirectory()) throw fail(existing === path.resolve(dataDir) ? 'is a file, not a directory' : `cannot be created: ${existing} is a file`)
      break
    }
    missing.unshift(existing)
    existing = path.dirname(existing)
  }
  for (const dir of missing) {
    await mkdir(dir, { mode: 0o700 }).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'EEXIST') throw fail(`cannot be created (${error.code ?? error.message} on ${dir})`)
    })
  }
  await access(dataDir, constants.W_OK | constants.X_OK).catch((error: NodeJS.ErrnoException) => {
    throw fail(`is not writable (${error.code ?? error.message})`)
  })
}

/** Held by the one embedded instance using a DATA_DIR; released on shutdown. */
export interface DataDirLock {
  release (): Promise<void>
}

const LOCK_SOCKET_NAME = 'instance.sock'

/**
 * Makes this process the only embedded instance on DATA_DIR, or fails saying which process holds
 * it and what to do. The lock is a Unix socket the instance listens on inside DATA_DIR: the kernel
 * frees it when the process dies however it dies, so there is no stale lock to clear by hand, and
 * a second instance tells a live holder (it answers) from a leftover socket file (refused).
 */
export async function lockDataDir (dataDir: string): Promise<DataDirLock> {
  await prepareDataDir(dataDir)
  const socketPath = path.join(dataDir, LOCK_SOCKET_NAME)
  const server = createServer((socket) => socket.end(`${process.pid}\n`))
  if (!await listenOn(server, socketPath)) {
    const holder = await lockHolder(socketPath)
    if (holder !== undefined) {
      throw new Error(`DATA_DIR=${dataDir} is in use by another embedded instance (pid ${holder}): ` +
        'one embedded instance keeps its users file and its rate limits to itself, so a second one on the same users would not share the limits. ' +
        'Stop the other instance, give this one another DATA_DIR (its own users), or set REDIS_URL to run several replicas on shared users and limits')
    }
    // A socket file left by an instance that was killed: nobody answers on it.
    await unlink(socketPath).catch(() => {})
    if (!await listenOn(server, socketPath)) throw new Error(`DATA_DIR=${dataDir} is being taken by another embedded instance starting at the same time`)
  }
  // The lock never keeps the process alive by itself.
  server.unref()
  return {
    async release () {
      server.close()
      await once(server, 'close')
    }
  }
}

/** Listens on the socket path; false when something already exists there. */
async function listenOn (server: Server, socketPath: string): Promise<boolean> {
  try {
    server.listen(socketPath)
    await once(server, 'listening')
    return true
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EADDRINUSE') return false
    throw new Error(`DATA_DIR cannot hold the instance lock ${socketPath} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`)
  }
}

/** The pid of the instance answering on the lock socket, or undefined when none does. */
async function lockHolder (socketPath: string): Promise<string | undefined> {
  return await new Promise((resolve) => {
    const socket = connect(socketPath)
    let answer = ''
    socket.setEncoding('utf8')
    socket.on('data', (chunk: string) => { answer += chunk })
    socket.on('end', () => resolve(answer.trim() || 'unknown'))
    socket.on('error', () => resolve(undefined))
    socket.setTimeout(2000, () => { socket.destroy(); resolve('unknown') })
  })
}
