import fp from 'fastify-plugin'
import { API_HEADERS, DOCS_HEADERS, HSTS_HEADER } from '../http/security-headers.ts'

/**
 * Security headers on every response, the request id echoed back, and HSTS when the service
 * itself terminates TLS. Token responses must not be cached (RFC 6749 5.1), so `no-store` is the
 * default; a route that wants caching (the JWKS) sets its own Cache-Control.
 */
export default fp(async function securityHeadersPlugin (app) {
  const hsts = app.config.TLS_CERT_FILE !== undefined ? HSTS_HEADER : {}
  const apiHeaders = { ...hsts, ...API_HEADERS }
  const docsHeaders = { ...hsts, ...DOCS_HEADERS }
  // A callback hook rather than an async one: it runs on every response, rejected logins included.
  app.addHook('onSend', (request, reply, payload, done) => {
    void reply.header('x-request-id', request.id)
    void reply.headers(request.url === '/docs' || request.url.startsWith('/docs/') ? docsHeaders : apiHeaders)
    if (!reply.hasHeader('cache-control')) void reply.header('cache-control', 'no-store')
    done(null, payload)
  })
}, { name: 'security-headers', dependencies: ['config'] })
