/** Headers every response carries: API responses are never cached, sniffed, framed or referred. */
export const API_HEADERS = {
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
export const DOCS_HEADERS = {
  ...API_HEADERS,
  'content-security-policy': "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; " +
    "font-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
}

/** When the service itself terminates TLS: browsers keep to HTTPS for a year, subdomains included. */
export const HSTS_HEADER = { 'strict-transport-security': 'max-age=31536000; includeSubDomains' }
