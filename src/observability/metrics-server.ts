import { createServer, type Server } from 'node:http'
import { once } from 'node:events'
import type { Registry } from 'prom-client'

/**
 * Serves GET /metrics on its own port, so Prometheus scrapes the pods directly and the public
 * port (the one the ingress routes to) never exposes it.
 */
export async function startMetricsServer (registry: Registry, host: string, port: number): Promise<Server> {
  const server = createServer((request, response) => {
    if (request.method !== 'GET' || request.url !== '/metrics') {
      response.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ message: 'Not found' }))
      return
    }
    registry.metrics().then(
      (text) => response.writeHead(200, { 'content-type': registry.contentType }).end(text),
      () => response.writeHead(500, { 'content-type': 'application/json' }).end(JSON.stringify({ message: 'Metrics unavailable' }))
    )
  })
  server.listen(port, host)
  await once(server, 'listening')
  return server
}
