import fp from 'fastify-plugin'

/** Headers every response carries: API responses are never cached, sniffed, framed or referred. */
const API_HEADERS = {
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'content-security-policy': "default-src 'none'; frame-ancestors 'none'"
}

/**
 * Security headers on every response, the request id echoed back, and HSTS when the service
 * itself terminates TLS. Token responses must not be cached (RFC 6749 5.1), so `no-store` is the
 * default; a route that wants caching (the JWKS) sets its own Cache-Control.
 */
export default fp(async function securityHeadersPlugin (app) {
  const hsts = app.config.TLS_CERT_FILE !== undefined ? { 'strict-transport-security': 'max-age=31536000; includeSubDomains' } : {}
  app.addHook('onSend', async (request, reply) => {
    void reply.header('x-request-id', request.id)
    void reply.headers(hsts)
    // The docs UI needs its own scripts and styles; everything else is JSON.
    if (!request.url.startsWith('/docs')) void reply.headers(API_HEADERS)
    else void reply.header('x-content-type-options', 'nosniff')
    if (!reply.hasHeader('cache-control')) void reply.header('cache-control', 'no-store')
  })
}, { name: 'security-headers', dependencies: ['config'] })
