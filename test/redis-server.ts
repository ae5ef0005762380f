import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import net from 'node:net'

/** A throwaway redis-server on a free port, which a test can stop and start again to simulate an outage. */
export interface RedisServer {
  port: number
  url: string
  stop (): Promise<void>
  start (): Promise<void>
}

export async function freePort (): Promise<number> {
  const server = net.createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as net.AddressInfo
  server.close()
  await once(server, 'close')
  return port
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
