import fp from 'fastify-plugin'

/** Headers every response carries: API responses are never cached, sniffed, framed or referred. */
const API_HEADERS = {
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'content-security-policy': "default-src 'none'; frame-ancestors 'none'"
}

/**
 * The docs UI (Swagger UI at /docs) loads its scripts, styles and images from /docs itself and
 * the OpenAPI document from /docs/json; it has no inline script. Its React components set inline
 * styles and its icons are data: URIs, hence those two allowances and nothing more.
 */
const DOCS_HEADERS = {
  ...API_HEADERS,
  'content-security-policy': "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; " +
    "font-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
}

/**
 * Security headers on every response, the request id echoed back, and HSTS when the service
 * itself terminates TLS. Token responses must not be cached (RFC 6749 5.1), so `no-store` is the
 * default; a route that wants caching (the JWKS) sets its own Cache-Control.
 */
export default fp(async function securityHeadersPlugin (app) {
  const hsts = app.config.TLS_CERT_FILE !== undefined ? { 'strict-transport-security': 'max-age=31536000; includeSubDomains' } : {}
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
