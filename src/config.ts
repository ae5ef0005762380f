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
  ACCOUNT_THROTTLE_MAX_SECONDS: Type.Integer({ minimum: 1, maximum: 86400, default: 900 }),
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

/** Validates the environment; a bad value throws an error naming the variable. */
export function loadConfig (env: Record<string, string | undefined> = process.env): Config {
  const config = envSchema<Config>({ schema: ConfigSchema, data: env, dotenv: false })
  if ((config.TLS_CERT_FILE === undefined) !== (config.TLS_KEY_FILE === undefined)) {
    throw new Error('env/TLS_CERT_FILE and env/TLS_KEY_FILE must be set together')
  }
  return config
}
