import { Type, type Static, type TSchema } from '@sinclair/typebox'
import { readFile } from 'node:fs/promises'
import { isIP } from 'node:net'
import { envSchema } from 'env-schema'

/** A string setting limited to a few values; the error names the variable and lists them. */
function oneOf<const T extends string> (values: readonly T[], defaultValue: T, description: string) {
  return Type.Unsafe<T>({ type: 'string', enum: values, default: defaultValue, description })
}

/**
 * Every setting the service reads, with its default and a description (the settings table of
 * docs/configuration.md is generated from them). Nothing else reads process.env: the server, the
 * CLI and the tests all get their settings from loadConfig().
 */
export const ConfigSchema = Type.Object({
  PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 3000, description: 'HTTP (or HTTPS) port.' }),
  HOST: Type.String({ default: '0.0.0.0', description: 'Address to listen on.' }),
  METRICS_PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 9464, description: 'Prometheus `/metrics` on its own listener, never routed through the ingress; `0` turns it off.' }),
  METRICS_HOST: Type.Optional(Type.String({ minLength: 1, description: 'Address the metrics listener binds to. Unset: `HOST`. `127.0.0.1` keeps `/metrics` to the machine itself on a plain host install.' })),
  ADMIN_PORT: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535, description: 'The [admin API](admin-api.md) (`/admin/v1/`) on its own listener, never routed through the ingress. Unset: off.' })),
  ADMIN_HOST: Type.Optional(Type.String({ minLength: 1, description: 'Address the admin listener binds to. Unset: `HOST`.' })),
  ADMIN_AUDIENCE: Type.Optional(Type.String({ minLength: 1, maxLength: 512, pattern: '^\\S+$', description: 'The `aud` an access token must carry to open the admin API (a client registered with it as an audience). Unset: `<JWT_ISSUER>/admin`. Never `JWT_AUDIENCE`.' })),
  DOCS_ENABLED: Type.Boolean({ default: true, description: 'The Swagger UI at `/docs`. `false` removes it and its assets (404); `npm run openapi` still writes the document. The production overlay sets `false`.' }),
  TLS_CERT_FILE: Type.Optional(Type.String({ minLength: 1, description: 'PEM certificate for in-process HTTPS with HSTS, for deployments without a TLS-terminating proxy. Set together with `TLS_KEY_FILE` or not at all.' })),
  TLS_KEY_FILE: Type.Optional(Type.String({ minLength: 1, description: 'PEM private key of `TLS_CERT_FILE`. Both or neither.' })),
  SHUTDOWN_TIMEOUT_MS: Type.Integer({ minimum: 1000, default: 10000, description: 'After SIGTERM, how long in-flight requests may take before the process exits anyway.' }),
  LOG_LEVEL: oneOf(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], 'info', 'Level of the JSON log (pino).'),
  REDIS_URL: Type.Optional(Type.String({ pattern: '^rediss?://', description: '`redis://` or `rediss://` URL of one Redis server. Set (or `REDIS_SENTINELS`, or `REDIS_CLUSTER_NODES`): Redis mode, shared by replicas. None of them: embedded mode, one instance. An error never shows its value, which may hold a password.' })),
  REDIS_KEY_PREFIX: Type.String({ default: 'auth:', description: 'Prefix of every Redis key the service writes.' }),
  REDIS_TLS_CA_FILE: Type.Optional(Type.String({ minLength: 1, description: 'PEM CA that signed the Redis servers\' certificates. With `REDIS_URL` it needs `rediss://` (which without it trusts the system CAs); with Sentinel or Cluster, setting it turns TLS on.' })),
  REDIS_TLS_CERT_FILE: Type.Optional(Type.String({ minLength: 1, description: 'Client certificate, for a Redis that requires one (`tls-auth-clients yes`). Set together with `REDIS_TLS_KEY_FILE` or not at all.' })),
  REDIS_TLS_KEY_FILE: Type.Optional(Type.String({ minLength: 1, description: 'Private key of `REDIS_TLS_CERT_FILE`. Both or neither.' })),
  REDIS_USERNAME: Type.Optional(Type.String({ minLength: 1, description: 'Redis ACL user (or put it in `REDIS_URL`, not both).' })),
  REDIS_PASSWORD_FILE: Type.Optional(Type.String({ minLength: 1, description: 'File holding the Redis password, e.g. a mounted Secret (or put it in `REDIS_URL`, not both).' })),
  REDIS_SENTINELS: Type.String({ default: '', description: 'Sentinel topology instead of `REDIS_URL`: comma-separated `host:port` of the sentinels.' }),
  REDIS_SENTINEL_MASTER: Type.Optional(Type.String({ minLength: 1, description: 'The name the sentinels monitor the primary under. Required with `REDIS_SENTINELS`.' })),
  REDIS_SENTINEL_USERNAME: Type.Optional(Type.String({ minLength: 1, description: 'The sentinels\' own ACL user, when they require credentials.' })),
  REDIS_SENTINEL_PASSWORD_FILE: Type.Optional(Type.String({ minLength: 1, description: 'File holding the sentinels\' own password, when they require one.' })),
  REDIS_CLUSTER_NODES: Type.String({ default: '', description: 'Redis Cluster topology instead of `REDIS_URL`: comma-separated `host:port` of some of its nodes.' }),
  TRUST_PROXY: Type.String({ default: '', description: 'Comma-separated addresses or CIDRs of proxies whose `X-Forwarded-For` is believed. Empty: nobody\'s.' }),
  CLIENTS_FILE: Type.Optional(Type.String({ minLength: 1, description: 'A clients file (YAML, see [Clients as code](clients-as-code.md)) every replica applies at start and within seconds of its content changing (polled every 2 s, so a mounted ConfigMap\'s update is seen), removing the clients it manages that it no longer declares. A file that stops parsing changes nothing: the last good state stays, one log line names the error, and `auth_clients_file_reconciliations_total{outcome="invalid"}` counts it. Unset: clients come from the CLI only.' })),
  DATA_DIR: Type.String({ default: './data', minLength: 1, description: 'Embedded mode\'s users and clients records (users.json, clients.json) and generated signing key.' }),
  TOKEN_TTL_SECONDS: Type.Integer({ minimum: 10, maximum: 86400, default: 900, description: 'Token lifetime: of login tokens, and of client tokens whose client has no `--ttl` of its own.' }),
  RATE_LIMIT_MAX: Type.Integer({ minimum: 1, default: 5, description: 'Login attempts per client IP ...' }),
  RATE_LIMIT_WINDOW_MS: Type.Integer({ minimum: 1000, default: 60000, description: '... in any rolling window of this length.' }),
  RATE_LIMIT_IPV6_PREFIX: Type.Integer({ minimum: 32, maximum: 128, default: 64, description: 'IPv6 clients count per network of this prefix length: one host usually owns a whole /64. An IPv4-mapped IPv6 address counts as its IPv4 address.' }),
  JWT_ALGORITHM: oneOf(['EdDSA', 'ES256', 'RS256'], 'EdDSA', 'Signature algorithm: `EdDSA` (Ed25519), `ES256` or `RS256`.'),
  JWT_PRIVATE_KEY_FILE: Type.Optional(Type.String({ minLength: 1, description: 'PEM private key that signs. Required in Redis mode; embedded mode generates one in `DATA_DIR` when unset. With `JWT_KEY_ROTATION_SECONDS`: the key the managed keys start from (it signs until the first rotation), read only while the store holds no managed key.' })),
  JWT_VERIFY_KEY_FILES: Type.String({ default: '', description: 'Comma-separated PEM files (public or private) of keys that verify and are published in the JWKS but do not sign: keys being rotated in or out by hand. Not with `JWT_KEY_ROTATION_SECONDS`.' }),
  JWT_KEY_ROTATION_SECONDS: Type.Integer({ minimum: 0, maximum: 31536000, default: 0, description: 'Keys managed by the service: it generates its signing keys, keeps them in Redis (or `DATA_DIR`) encrypted, and rotates to a new one this often, publishing each a third of the interval before it signs ([Key rotation](key-rotation.md)). `0`: key files (`JWT_PRIVATE_KEY_FILE`). Else at least 15, and at least the longest token lifetime (`TOKEN_TTL_SECONDS`, every client\'s `--ttl`); needs `JWT_KEY_ENCRYPTION_KEY_FILE`.' }),
  JWT_KEY_ENCRYPTION_KEY_FILE: Type.Optional(Type.String({ minLength: 1, description: 'With `JWT_KEY_ROTATION_SECONDS`: a file readable by its owner only holding 32 random bytes as base64 (`openssl rand -base64 32`), the same on every replica. It encrypts the managed private keys (AES-256-GCM), so the store holds only ciphertext, and the keyed hash of the throttle and audit lines is derived from it.' })),
  JWT_ISSUER: Type.String({ minLength: 1, default: 'http://localhost:3000', description: 'The service\'s public base URL: `iss` of every token (login and client tokens) and `issuer` of the OAuth metadata, which OAuth clients discover the service by. An origin only (no path); `https`, or `http` only for `localhost`, `127.0.0.0/8` and `[::1]`: the service refuses to start otherwise. Set it to the URL callers use (e.g. `https://auth.example.com`).' }),
  JWT_AUDIENCE: Type.String({ minLength: 1, default: 'internal-services', description: '`aud` claim of login tokens, required on verification. (Client tokens carry the audience their client asked for, never this one: no client may be registered for it.)' }),
  ARGON2_MEMORY_KIB: Type.Integer({ minimum: 8192, maximum: 4194304, default: 19456, description: 'argon2id memory (OWASP: 19 MiB).' }),
  ARGON2_TIME_COST: Type.Integer({ minimum: 1, maximum: 100, default: 2, description: 'argon2id passes.' }),
  ARGON2_PARALLELISM: Type.Integer({ minimum: 1, maximum: 16, default: 1, description: 'argon2id lanes.' }),
  ARGON2_THREADS: Type.Optional(Type.Integer({ minimum: 1, maximum: 64, description: 'argon2 hashes that run at once. Unset: the cores the process may use (its CPU affinity, capped by a container CPU limit, at least 1). Sizes Node\'s libuv threadpool (this plus 2 spares, so file and DNS work never waits behind a hash); do not set `UV_THREADPOOL_SIZE`.' })),
  LOGIN_QUEUE_MAX: Type.Optional(Type.Integer({ minimum: 0, maximum: 10000, description: 'Password verifications that may wait for a hashing thread. Unset: 8 × `ARGON2_THREADS`. One more login is answered 503 with `Retry-After: 1` at once, without hashing. `0`: no waiting at all.' })),
  PASSWORD_MIN_LENGTH: Type.Integer({ minimum: 8, maximum: 1024, default: 15, description: 'Minimum password length in characters (NIST SP 800-63B rev. 4).' }),
  ACCOUNT_THROTTLE_THRESHOLD: Type.Integer({ minimum: 1, maximum: 100, default: 10, description: 'Failed logins for one username (from addresses it does not trust) before each further attempt must wait.' }),
  ACCOUNT_THROTTLE_BASE_SECONDS: Type.Integer({ minimum: 1, default: 30, description: 'First wait once throttled; doubles with each further failure ...' }),
  ACCOUNT_THROTTLE_MAX_SECONDS: Type.Integer({ minimum: 1, maximum: 86400, default: 900, description: '... up to this cap.' }),
  CLIENT_AUTH_FAILURE_MAX: Type.Integer({ minimum: 1, default: 20, description: 'Failed OAuth client authentications per client address, counted as login attempts are (see `RATE_LIMIT_IPV6_PREFIX`) ...' }),
  CLIENT_AUTH_FAILURE_WINDOW_MS: Type.Integer({ minimum: 1000, default: 60000, description: '... in any rolling window of this length; beyond it 429 whatever the credentials, before the signature of any assertion is checked.' }),
  TOKEN_GRANT_RATE_MAX: Type.Integer({ minimum: 1, default: 600, description: 'Tokens granted per OAuth client ...' }),
  TOKEN_GRANT_RATE_WINDOW_MS: Type.Integer({ minimum: 1000, default: 60000, description: '... in any rolling window of this length; beyond it 429 with `Retry-After`.' }),
  CLIENT_ASSERTION_MAX_LIFETIME_SECONDS: Type.Integer({ minimum: 60, maximum: 86400, default: 3600, description: 'How far ahead a `private_key_jwt` client assertion may expire (its `exp`, from now, with 30 s of clock tolerance); one expiring later is refused. An hour, as Okta allows, takes what the widely used libraries sign (authlib: `exp` = `iat` + 3600). Its `jti` is remembered that long too: until a minute after the assertion stops being accepted.' }),
  TOKEN_EXCHANGE_MAX_DEPTH: Type.Integer({ minimum: 1, maximum: 10, default: 3, description: 'Token exchange (RFC 8693): the most actors a token\'s `act` chain may name (a first exchange gives 1). An exchange beyond it is refused, and so is a token beyond it wherever one is verified, which bounds what verifying an exchanged token costs: one revocation and one account or client lookup per token of its chain.' }),
  ACCOUNT_TRUSTED_CLIENT_DAYS: Type.Integer({ minimum: 0, maximum: 365, default: 30, description: 'A client address (IPv6: its /64) that logged in to an account is, for this long, judged by its own failures only (0: never).' })
})

export type Config = Static<typeof ConfigSchema>

/** A comma-separated setting as its non-empty entries. */
export function listSetting (value: string): string[] {
  return value.split(',').map((entry) => entry.trim()).filter((entry) => entry !== '')
}

/** Reads a file a setting names; the error names the setting. */
export async function readSettingFile (variable: string, file: string): Promise<string> {
  return await readFile(file, 'utf8').catch((error: NodeJS.ErrnoException) => {
    throw new Error(`${variable} cannot read ${file} (${error.code ?? error.message})`)
  })
}

/** Settings whose values an error never repeats: a Redis URL may carry a password. */
const SECRET_SETTINGS = new Set(['REDIS_URL'])

/** What a setting's schema allows, in words: in its error and in the settings table. */
export function allowedValues (schema: TSchema): string {
  if (Array.isArray(schema.enum)) return `one of ${schema.enum.join(', ')}`
  if (schema.type === 'integer') {
    if (schema.maximum !== undefined) return `an integer from ${schema.minimum as number} to ${schema.maximum as number}`
    return `an integer of at least ${schema.minimum as number}`
  }
  if (schema.pattern !== undefined) return `a value matching ${schema.pattern as string}`
  return `a ${schema.type as string}${schema.minLength === 1 ? ' that is not empty' : ''}`
}

/** One line naming the variable, its value (unless secret) and what would be allowed. */
function invalidSetting (variable: string, value: string | undefined, allowed: string): string {
  const shown = SECRET_SETTINGS.has(variable) ? '(value not shown)' : JSON.stringify(value ?? '')
  return `Invalid ${variable} ${shown}: must be ${allowed}`
}

/** An IPv4/IPv6 address, or one with a /prefix length. */
function isAddressOrCidr (entry: string): boolean {
  const [address, prefix, ...rest] = entry.split('/')
  const version = isIP(address)
  if (version === 0 || rest.length > 0) return false
  return prefix === undefined || (/^\d{1,3}$/.test(prefix) && Number(prefix) <= (version === 4 ? 32 : 128))
}

/** Hosts where plain http crosses no network: the service's own machine. */
export function isLoopbackHost (hostname: string): boolean {
  return /^(localhost|127(\.\d{1,3}){3}|\[::1\])$/.test(hostname)
}

/**
 * Why JWT_ISSUER cannot be the issuer, or undefined when it can. It is the origin clients
 * discover the service by (RFC 8414 puts the metadata at a fixed path under it), so it is an
 * absolute https URL without path, query or fragment; http is accepted for loopback hosts only,
 * where nothing crosses a network.
 */
export function issuerViolation (issuer: string): string | undefined {
  let url: URL
  try {
    url = new URL(issuer)
  } catch {
    return 'must be an absolute URL such as https://auth.example.com'
  }
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && isLoopbackHost(url.hostname))) {
    return 'must be an https URL (http only for localhost, 127.0.0.0/8 and [::1])'
  }
  if (url.pathname !== '/' || url.search !== '' || url.hash !== '' || url.username !== '' || url.password !== '') {
    return 'must be an origin only (scheme, host, port): no path, query, fragment or credentials'
  }
  return undefined
}

/**
 * Validates the environment. A bad value throws an error with one line per bad variable, naming
 * it, its value (never a secret's) and what is allowed.
 */
export function loadConfig (env: Record<string, string | undefined> = process.env): Config {
  let config: Config
  try {
    config = envSchema<Config>({ schema: ConfigSchema, data: env, dotenv: false })
  } catch (error) {
    const variables = (error as { errors?: Array<{ instancePath: string }> }).errors?.map((failure) => failure.instancePath.slice(1)) ?? []
    if (variables.length === 0 || !variables.every((variable) => Object.hasOwn(ConfigSchema.properties, variable))) throw error
    throw new Error([...new Set(variables)].map((variable) => invalidSetting(variable, env[variable], allowedValues(ConfigSchema.properties[variable as keyof Config]))).join('\n'))
  }
  if ((config.TLS_CERT_FILE === undefined) !== (config.TLS_KEY_FILE === undefined)) {
    throw new Error('env/TLS_CERT_FILE and env/TLS_KEY_FILE must be set together')
  }
  const untrustworthy = listSetting(config.TRUST_PROXY).find((entry) => !isAddressOrCidr(entry))
  if (untrustworthy !== undefined) {
    throw new Error(invalidSetting('TRUST_PROXY', untrustworthy, 'comma-separated IP addresses or CIDR ranges of your proxies, such as 10.0.0.0/8,192.168.1.10 (empty: trust no proxy)'))
  }
  const issuerProblem = issuerViolation(config.JWT_ISSUER)
  if (issuerProblem !== undefined) throw new Error(`env/JWT_ISSUER ${issuerProblem}`)
  if (adminAudience(config) === config.JWT_AUDIENCE) throw new Error('env/ADMIN_AUDIENCE must differ from env/JWT_AUDIENCE: login tokens are for JWT_AUDIENCE, and none opens the admin API')
  checkKeyRotationSettings(config)
  checkRedisSettings(config)
  return config
}

/** The `aud` of the admin API's tokens: ADMIN_AUDIENCE, or JWT_ISSUER's `/admin`. */
export function adminAudience (config: Pick<Config, 'ADMIN_AUDIENCE' | 'JWT_ISSUER'>): string {
  return config.ADMIN_AUDIENCE ?? `${config.JWT_ISSUER.replace(/\/$/, '')}/admin`
}

/** The shortest JWT_KEY_ROTATION_SECONDS: a third of it is the lead that publishes a key before it signs. */
export const MIN_KEY_ROTATION_SECONDS = 15

/** Managed keys' settings agree with each other and with the token lifetime. */
function checkKeyRotationSettings (config: Config): void {
  const interval = config.JWT_KEY_ROTATION_SECONDS
  if (interval === 0) {
    if (config.JWT_KEY_ENCRYPTION_KEY_FILE !== undefined) throw new Error('env/JWT_KEY_ENCRYPTION_KEY_FILE is set without env/JWT_KEY_ROTATION_SECONDS: it encrypts managed keys only')
    return
  }
  if (interval < MIN_KEY_ROTATION_SECONDS) {
    throw new Error(invalidSetting('JWT_KEY_ROTATION_SECONDS', String(interval), `0 (key files) or at least ${MIN_KEY_ROTATION_SECONDS}`))
  }
  if (config.TOKEN_TTL_SECONDS > interval) {
    throw new Error(`env/JWT_KEY_ROTATION_SECONDS (${interval}) is shorter than env/TOKEN_TTL_SECONDS (${config.TOKEN_TTL_SECONDS}): a key must outlive the tokens it signs, or the JWKS would hold more than three keys; raise the one or lower the other`)
  }
  if (config.JWT_KEY_ENCRYPTION_KEY_FILE === undefined) {
    throw new Error('env/JWT_KEY_ENCRYPTION_KEY_FILE is required with env/JWT_KEY_ROTATION_SECONDS: the key that encrypts the managed signing keys (create it with `openssl rand -base64 32 > kek && chmod 600 kek`)')
  }
  if (listSetting(config.JWT_VERIFY_KEY_FILES).length > 0) {
    throw new Error('env/JWT_VERIFY_KEY_FILES does not apply with env/JWT_KEY_ROTATION_SECONDS: managed keys publish their own; finish the rotation by hand first (docs/key-rotation.md)')
  }
}

/** host:port, host a name, an IPv4 address or a bracketed IPv6 address. */
const HOST_PORT = /^(\[[0-9A-Fa-f:.]+\]|[^\s:[\]]+):\d{1,5}$/

/**
 * The Redis settings agree with each other. Errors name the settings and never echo REDIS_URL,
 * which may hold a password.
 */
function checkRedisSettings (config: Config): void {
  const topologies = (['REDIS_URL', 'REDIS_SENTINELS', 'REDIS_CLUSTER_NODES'] as const)
    .filter((name) => name === 'REDIS_URL' ? config.REDIS_URL !== undefined : listSetting(config[name]).length > 0)
  if (topologies.length > 1) {
    throw new Error(`env/${topologies.join(' and env/')} are set: choose one Redis topology (REDIS_URL for one server, REDIS_SENTINELS for Sentinel, REDIS_CLUSTER_NODES for Cluster)`)
  }
  for (const name of ['REDIS_SENTINELS', 'REDIS_CLUSTER_NODES'] as const) {
    const wrong = listSetting(config[name]).find((entry) => !HOST_PORT.test(entry))
    if (wrong !== undefined) throw new Error(`env/${name} must be a comma-separated list of host:port (got "${wrong}")`)
  }
  const sentinel = topologies[0] === 'REDIS_SENTINELS'
  if (sentinel && config.REDIS_SENTINEL_MASTER === undefined) {
    throw new Error('env/REDIS_SENTINEL_MASTER is required with env/REDIS_SENTINELS: the name the sentinels monitor the primary under')
  }
  const needsRedis = (names: Array<keyof Config>, topology: string): void => {
    const stray = names.find((name) => config[name] !== undefined)
    if (stray !== undefined) throw new Error(`env/${stray} is set without ${topology}`)
  }
  if (!sentinel) needsRedis(['REDIS_SENTINEL_MASTER', 'REDIS_SENTINEL_USERNAME', 'REDIS_SENTINEL_PASSWORD_FILE'], 'env/REDIS_SENTINELS')
  if (topologies.length === 0) {
    needsRedis(['REDIS_USERNAME', 'REDIS_PASSWORD_FILE', 'REDIS_TLS_CA_FILE', 'REDIS_TLS_CERT_FILE', 'REDIS_TLS_KEY_FILE'], 'a Redis topology (env/REDIS_URL, env/REDIS_SENTINELS or env/REDIS_CLUSTER_NODES)')
  }
  if ((config.REDIS_TLS_CERT_FILE === undefined) !== (config.REDIS_TLS_KEY_FILE === undefined)) {
    throw new Error('env/REDIS_TLS_CERT_FILE and env/REDIS_TLS_KEY_FILE must be set together')
  }
  if (config.REDIS_URL !== undefined) {
    let url: URL
    try {
      url = new URL(config.REDIS_URL)
    } catch {
      throw new Error('env/REDIS_URL is not a valid URL')
    }
    if (url.protocol === 'redis:' && (config.REDIS_TLS_CA_FILE ?? config.REDIS_TLS_CERT_FILE) !== undefined) {
      throw new Error('env/REDIS_TLS_CA_FILE and env/REDIS_TLS_CERT_FILE need a rediss:// env/REDIS_URL')
    }
    if (url.password !== '' && config.REDIS_PASSWORD_FILE !== undefined) {
      throw new Error('env/REDIS_URL holds a password and env/REDIS_PASSWORD_FILE is set: give the credentials one way')
    }
    if (url.username !== '' && config.REDIS_USERNAME !== undefined) {
      throw new Error('env/REDIS_URL holds a username and env/REDIS_USERNAME is set: give the credentials one way')
    }
  } else if (config.REDIS_TLS_CERT_FILE !== undefined && config.REDIS_TLS_CA_FILE === undefined) {
    // Without a URL scheme to say so, the CA file is what turns TLS on for Sentinel and Cluster.
    throw new Error('env/REDIS_TLS_CERT_FILE needs env/REDIS_TLS_CA_FILE, which turns on TLS with env/REDIS_SENTINELS or env/REDIS_CLUSTER_NODES')
  }
}
