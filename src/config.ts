import { Type, type Static } from '@sinclair/typebox'
import { readFile } from 'node:fs/promises'
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
  /** In-process HTTPS (with HSTS) for deployments without a TLS-terminating proxy: both or neither. */
  TLS_CERT_FILE: Type.Optional(Type.String({ minLength: 1 })),
  TLS_KEY_FILE: Type.Optional(Type.String({ minLength: 1 })),
  /** After SIGTERM: how long in-flight requests may take before the process exits anyway. */
  SHUTDOWN_TIMEOUT_MS: Type.Integer({ minimum: 1000, default: 10000 }),
  LOG_LEVEL: oneOf(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], 'info'),
  /** Redis mode when set (shared by replicas); embedded single-instance mode when not. */
  REDIS_URL: Type.Optional(Type.String({ pattern: '^rediss?://' })),
  REDIS_KEY_PREFIX: Type.String({ default: 'auth:' }),
  /** TLS to Redis: the CA that signed the servers' certificates, and an optional client certificate. */
  REDIS_TLS_CA_FILE: Type.Optional(Type.String({ minLength: 1 })),
  REDIS_TLS_CERT_FILE: Type.Optional(Type.String({ minLength: 1 })),
  REDIS_TLS_KEY_FILE: Type.Optional(Type.String({ minLength: 1 })),
  /** Redis ACL credentials, instead of putting them in REDIS_URL: the password is read from a file (a mounted secret). */
  REDIS_USERNAME: Type.Optional(Type.String({ minLength: 1 })),
  REDIS_PASSWORD_FILE: Type.Optional(Type.String({ minLength: 1 })),
  /** Sentinel topology instead of REDIS_URL: comma-separated host:port of the sentinels, and the name of the monitored primary. */
  REDIS_SENTINELS: Type.String({ default: '' }),
  REDIS_SENTINEL_MASTER: Type.Optional(Type.String({ minLength: 1 })),
  /** The sentinels' own credentials, when they require any. */
  REDIS_SENTINEL_USERNAME: Type.Optional(Type.String({ minLength: 1 })),
  REDIS_SENTINEL_PASSWORD_FILE: Type.Optional(Type.String({ minLength: 1 })),
  /** Redis Cluster topology instead of REDIS_URL: comma-separated host:port of some of its nodes. */
  REDIS_CLUSTER_NODES: Type.String({ default: '' }),
  /** Comma-separated addresses or CIDRs of proxies whose X-Forwarded-For is believed. Empty: nobody's. */
  TRUST_PROXY: Type.String({ default: '' }),
  DATA_DIR: Type.String({ default: './data', minLength: 1 }),
  TOKEN_TTL_SECONDS: Type.Integer({ minimum: 60, maximum: 86400, default: 900 }),
  RATE_LIMIT_MAX: Type.Integer({ minimum: 1, default: 5 }),
  RATE_LIMIT_WINDOW_MS: Type.Integer({ minimum: 1000, default: 60000 }),
  JWT_ALGORITHM: oneOf(['EdDSA', 'ES256', 'RS256'], 'EdDSA'),
  JWT_PRIVATE_KEY_FILE: Type.Optional(Type.String({ minLength: 1 })),
  /** Comma-separated PEM files of keys that verify (and are published in the JWKS) but do not sign: keys being rotated in or out. */
  JWT_VERIFY_KEY_FILES: Type.String({ default: '' }),
  JWT_ISSUER: Type.String({ minLength: 1, default: 'auth-service' }),
  JWT_AUDIENCE: Type.String({ minLength: 1, default: 'internal-services' }),
  ARGON2_MEMORY_KIB: Type.Integer({ minimum: 8192, maximum: 4194304, default: 19456 }),
  ARGON2_TIME_COST: Type.Integer({ minimum: 1, maximum: 100, default: 2 }),
  ARGON2_PARALLELISM: Type.Integer({ minimum: 1, maximum: 16, default: 1 }),
  PASSWORD_MIN_LENGTH: Type.Integer({ minimum: 8, maximum: 1024, default: 15 }),
  /** Consecutive failed logins for one username before each further attempt must wait. */
  ACCOUNT_THROTTLE_THRESHOLD: Type.Integer({ minimum: 1, maximum: 100, default: 10 }),
  /** The first wait; it doubles with each further failure, up to ACCOUNT_THROTTLE_MAX_SECONDS. */
  ACCOUNT_THROTTLE_BASE_SECONDS: Type.Integer({ minimum: 1, default: 30 }),
  ACCOUNT_THROTTLE_MAX_SECONDS: Type.Integer({ minimum: 1, maximum: 86400, default: 900 })
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

/** Validates the environment; a bad value throws an error naming the variable. */
export function loadConfig (env: Record<string, string | undefined> = process.env): Config {
  const config = envSchema<Config>({ schema: ConfigSchema, data: env, dotenv: false })
  if ((config.TLS_CERT_FILE === undefined) !== (config.TLS_KEY_FILE === undefined)) {
    throw new Error('env/TLS_CERT_FILE and env/TLS_KEY_FILE must be set together')
  }
  checkRedisSettings(config)
  return config
}

/** How the service reaches Redis, or undefined in embedded mode. Exactly one topology may be configured. */
export type RedisTopology = 'standalone' | 'sentinel' | 'cluster'

/** The topology the settings choose: REDIS_URL, REDIS_SENTINELS or REDIS_CLUSTER_NODES; none is embedded mode. */
export function redisTopology (config: Pick<Config, 'REDIS_URL' | 'REDIS_SENTINELS' | 'REDIS_CLUSTER_NODES'>): RedisTopology | undefined {
  if (config.REDIS_URL !== undefined) return 'standalone'
  if (listSetting(config.REDIS_SENTINELS).length > 0) return 'sentinel'
  if (listSetting(config.REDIS_CLUSTER_NODES).length > 0) return 'cluster'
  return undefined
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
