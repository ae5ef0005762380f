import { Type, type Static, type TSchema } from '@sinclair/typebox'
import { readFile } from 'node:fs/promises'
import { isIP } from 'node:net'
import { envSchema } from 'env-schema'

/** A string setting limited to a few values; the error names the variable and lists them. */
function oneOf<const T extends string> (values: readonly T[], defaultValue: T) {
  return Type.Unsafe<T>({ type: 'string', enum: values, default: defaultValue })
}

/**
 * Every setting the service reads, with its default. Nothing else reads process.env:
 * the server, the CLI and the tests all get their settings from loadConfig().
 */
export const ConfigSchema = Type.Object({
  PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 3000 }),
  HOST: Type.String({ default: '0.0.0.0' }),
  /** Prometheus /metrics on its own listener, never routed through the ingress. 0 turns it off. */
  METRICS_PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 9464 }),
  /** Where the metrics listener binds; unset: HOST. 127.0.0.1 keeps /metrics to the machine itself. */
  METRICS_HOST: Type.Optional(Type.String({ minLength: 1 })),
  /** The Swagger UI at /docs. false removes it (404); `npm run openapi` still writes the document. */
  DOCS_ENABLED: Type.Boolean({ default: true }),
  /** In-process HTTPS (with HSTS) for deployments without a TLS-terminating proxy: both or neither. */
  TLS_CERT_FILE: Type.Optional(Type.String({ minLength: 1 })),
  TLS_KEY_FILE: Type.Optional(Type.String({ minLength: 1 })),
  /** After SIGTERM: how long in-flight requests may take before the process exits anyway. */
  SHUTDOWN_TIMEOUT_MS: Type.Integer({ minimum: 1000, default: 10000 }),
  LOG_LEVEL: oneOf(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], 'info'),
  /** Redis mode when set (shared by replicas); embedded single-instance mode when not. */
  REDIS_URL: Type.Optional(Type.String({ pattern: '^rediss?://' })),
  REDIS_KEY_PREFIX: Type.String({ default: 'auth:' }),
  /** Comma-separated addresses or CIDRs of proxies whose X-Forwarded-For is believed. Empty: nobody's. */
  TRUST_PROXY: Type.String({ default: '' }),
  DATA_DIR: Type.String({ default: './data', minLength: 1 }),
  TOKEN_TTL_SECONDS: Type.Integer({ minimum: 60, maximum: 86400, default: 900 }),
  RATE_LIMIT_MAX: Type.Integer({ minimum: 1, default: 5 }),
  RATE_LIMIT_WINDOW_MS: Type.Integer({ minimum: 1000, default: 60000 }),
  /** IPv6 clients are limited per network of this prefix length: one host usually owns a whole /64. */
  RATE_LIMIT_IPV6_PREFIX: Type.Integer({ minimum: 32, maximum: 128, default: 64 }),
  JWT_ALGORITHM: oneOf(['EdDSA', 'ES256', 'RS256'], 'EdDSA'),
  JWT_PRIVATE_KEY_FILE: Type.Optional(Type.String({ minLength: 1 })),
  /** Comma-separated PEM files of keys that verify (and are published in the JWKS) but do not sign: keys being rotated in or out. */
  JWT_VERIFY_KEY_FILES: Type.String({ default: '' }),
  /** The service's public base URL: `iss` of every token and `issuer` of the OAuth metadata. */
  JWT_ISSUER: Type.String({ minLength: 1, default: 'http://localhost:3000' }),
  JWT_AUDIENCE: Type.String({ minLength: 1, default: 'internal-services' }),
  ARGON2_MEMORY_KIB: Type.Integer({ minimum: 8192, maximum: 4194304, default: 19456 }),
  ARGON2_TIME_COST: Type.Integer({ minimum: 1, maximum: 100, default: 2 }),
  ARGON2_PARALLELISM: Type.Integer({ minimum: 1, maximum: 16, default: 1 }),
  /** Hashes run at once. Unset: the cores this process may use (CPU affinity and cgroup CPU quota). */
  ARGON2_THREADS: Type.Optional(Type.Integer({ minimum: 1, maximum: 64 })),
  /** Password verifications that may wait for a hashing thread; beyond it a login is answered 503 at once. Unset: 8 x ARGON2_THREADS. */
  LOGIN_QUEUE_MAX: Type.Optional(Type.Integer({ minimum: 0, maximum: 10000 })),
  PASSWORD_MIN_LENGTH: Type.Integer({ minimum: 8, maximum: 1024, default: 15 }),
  /** Consecutive failed logins for one username before each further attempt must wait. */
  ACCOUNT_THROTTLE_THRESHOLD: Type.Integer({ minimum: 1, maximum: 100, default: 10 }),
  /** The first wait; it doubles with each further failure, up to ACCOUNT_THROTTLE_MAX_SECONDS. */
  ACCOUNT_THROTTLE_BASE_SECONDS: Type.Integer({ minimum: 1, default: 30 }),
  ACCOUNT_THROTTLE_MAX_SECONDS: Type.Integer({ minimum: 1, maximum: 86400, default: 900 }),
  /** Failed OAuth client authentications per client IP before further attempts get 429 unchecked ... */
  CLIENT_AUTH_FAILURE_MAX: Type.Integer({ minimum: 1, default: 20 }),
  /** ... in any rolling window of this length. */
  CLIENT_AUTH_FAILURE_WINDOW_MS: Type.Integer({ minimum: 1000, default: 60000 }),
  /** Tokens granted per client id ... */
  TOKEN_GRANT_RATE_MAX: Type.Integer({ minimum: 1, default: 600 }),
  /** ... in any rolling window of this length. */
  TOKEN_GRANT_RATE_WINDOW_MS: Type.Integer({ minimum: 1000, default: 60000 }),
  /** A client address (IPv6: its /64) that logged in to an account is spared others' failures for this long. */
  ACCOUNT_TRUSTED_CLIENT_DAYS: Type.Integer({ minimum: 0, maximum: 365, default: 30 })
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

/** What a setting's schema allows, in words. */
function allowedValues (schema: TSchema): string {
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
  return config
}
