import { once } from 'node:events'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Test } from 'tap'

/** A real key host on loopback, as a client's jwks_uri or a workload issuer would serve keys. */
export interface KeyHost {
  /** The URL of its key set. */
  url: string
  /** How many requests it has had: each is one fetch by the service. */
  requests (): number
}

/** Starts a key host answering every request with `serve`; closed when the test ends. */
export async function startKeyHost (t: Test, serve: (request: IncomingMessage, response: ServerResponse) => void): Promise<KeyHost> {
  let requests = 0
  const server = createServer((request, response) => {
    requests++
    serve(request, response)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => {
    server.closeAllConnections()
    server.close()
  })
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks.json`, requests: () => requests }
}

/** What a streamed body came to: the bytes handed to the socket, and whether all of them were. */
export interface Streamed {
  written: number
  complete: boolean
}

const CHUNK = Buffer.alloc(64 * 1024, 'a')

/**
 * Answers 200 with a key set of `totalBytes` (`{"keys":[],"x":"aaa…"}`), produced a chunk at a
 * time as the socket drains, so a huge body costs the test nothing it does not send. With
 * `contentLength` false the body is chunked, its length said nowhere. Resolves when the
 * connection closes, with how much was written by then.
 */
export async function streamKeySet (response: ServerResponse, totalBytes: number, { contentLength }: { contentLength: boolean }): Promise<Streamed> {
  const head = Buffer.from('{"keys":[],"x":"')
  const tail = Buffer.from('"}')
  response.setHeader('content-type', 'application/json')
  if (contentLength) response.setHeader('content-length', totalBytes)
  let written = 0
  const closed = new Promise<void>((resolve) => response.once('close', resolve))
  const drained = async () => { await Promise.race([new Promise((resolve) => response.once('drain', resolve)), closed]) }
  const write = async (chunk: Buffer): Promise<void> => {
    written += chunk.length
    if (!response.write(chunk)) await drained()
  }
  void (async () => {
    await write(head)
    for (let left = totalBytes - head.length - tail.length; left > 0 && !response.destroyed; left -= CHUNK.length) {
      await write(left >= CHUNK.length ? CHUNK : CHUNK.subarray(0, left))
    }
    if (!response.destroyed) {
      await write(tail)
      response.end()
    }
  })()
  await closed
  return { written, complete: response.writableFinished }
}
