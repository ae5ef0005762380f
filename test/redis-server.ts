import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import net from 'node:net'

/** A throwaway redis-server on a free port, which a test can stop and start again to simulate an outage. */
export interface RedisServer {
  port: number
  url: string
  stop (): Promise<void>
  start (): Promise<void>
  /** Sends the running server a signal: SIGSTOP makes it a Redis that hangs, SIGCONT wakes it. */
  signal (name: NodeJS.Signals): void
}

/**
 * The lowest port the kernel hands out for outgoing connections and listen(0) (Linux reads it from
 * ip_local_port_range; 32768 elsewhere).
 */
const EPHEMERAL_LOW = (() => {
  try {
    return Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0])
  } catch {
    return 32768
  }
})()
const FREE_PORT_LOW = 20_000

/**
 * A port nothing listens on, for a test to listen on soon after. Taken below the ephemeral range:
 * there, neither the suite's outgoing connections (thousands of them, to Redis and the services)
 * nor another listen(0) can take it in the meantime, which they did (EADDRINUSE).
 */
export async function freePort (): Promise<number> {
  for (;;) {
    const port = FREE_PORT_LOW + Math.floor(Math.random() * Math.max(EPHEMERAL_LOW - FREE_PORT_LOW, 10_000))
    const server = net.createServer()
    const listening = await new Promise<boolean>((resolve) => {
      server.once('error', () => resolve(false))
      server.listen(port, '127.0.0.1', () => resolve(true))
    })
    if (!listening) continue
    server.close()
    await once(server, 'close')
    return port
  }
}

async function waitForPort (port: number, deadline: number): Promise<void> {
  while (true) {
    const connected = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, '127.0.0.1')
      socket.once('connect', () => { socket.destroy(); resolve(true) })
      socket.once('error', () => resolve(false))
    })
    if (connected) return
    if (Date.now() > deadline) throw new Error(`redis-server did not listen on ${port}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

/** `options` are redis-server command-line settings after the test defaults (no persistence), which they override. */
export async function startRedisServer (options: string[] = []): Promise<RedisServer> {
  const port = await freePort()
  let child: ChildProcess | undefined

  const server: RedisServer = {
    port,
    url: `redis://127.0.0.1:${port}`,
    async start () {
      child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', ...options], { stdio: 'ignore' })
      await waitForPort(port, Date.now() + 5000)
    },
    signal (name) {
      child?.kill(name)
    },
    async stop () {
      if (child === undefined || child.exitCode !== null) return
      const exited = once(child, 'exit')
      child.kill('SIGKILL')
      await exited
      child = undefined
    }
  }
  await server.start()
  return server
}
