import { createHash, createPrivateKey, createPublicKey, generateKeyPair, type JsonWebKey, type KeyObject } from 'node:crypto'
import { existsSync } from 'node:fs'
import { mkdir, stat, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { promisify } from 'node:util'
import { listSetting, readSettingFile, type Config } from '../config.ts'
import { KEY_ENCRYPTION_KEY_BYTES, KeyEncryptionKey } from './key-encryption.ts'

export type JwtAlgorithm = Config['JWT_ALGORITHM']

/** A key that verifies tokens, as published in the JWKS. */
export interface VerificationKey {
  algorithm: JwtAlgorithm
  /** RFC 7638 JWK thumbprint of the public key: the same on every replica that loads the same file. */
  kid: string
  publicKeyPem: string
  jwk: PublicJwk
}

/** A JWKS entry: the public members of the key only, with kid, alg and use. */
export interface PublicJwk {
  kty: string
  kid: string
  alg: JwtAlgorithm
  use: 'sig'
  crv?: string
  x?: string
  y?: string
  n?: string
  e?: string
}

/** The one key that signs; it verifies too. */
export interface SigningKey extends VerificationKey {
  privateKeyPem: string
}

/** Every key a replica knows at one time: the signing key and the keys that only verify until removed. */
export interface KeyRing {
  signingKey: SigningKey
  /** By kid, the signing key included: every key of the JWKS. */
  verificationKeys: Map<string, VerificationKey>
}

/** Where the keys come from: the same ring for good (key files), or one that changes as keys rotate (managed keys). */
export interface SigningKeys {
  /** The ring now: read it at each use; a new object whenever a key has been added, switched or removed. */
  readonly keyRing: KeyRing
  /** How long a consumer may cache the JWKS (its Cache-Control max-age). */
  readonly jwksMaxAgeSeconds: number
}

/** How long consumers may cache the JWKS of key files, and at most that of managed keys: well under a rotation's waiting step. */
export const JWKS_MAX_AGE_SECONDS = 300

/** Where embedded mode keeps the key it generated, so tokens survive a restart. */
export const EMBEDDED_KEY_FILE_NAME = 'jwt-signing-key.pem'

/** A new PEM private key for the algorithm, generated off the event loop (an RSA key takes a while). */
export async function generatePrivateKeyPem (algorithm: JwtAlgorithm): Promise<string> {
  const generate = promisify(generateKeyPair)
  const { privateKey } = algorithm === 'EdDSA'
    ? await generate('ed25519', undefined)
    : algorithm === 'ES256'
      ? await generate('ec', { namedCurve: 'P-256' })
      : await generate('rsa', { modulusLength: 3072 })
  return privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()
}

/**
 * Writes a new private key file readable by its owner only. With `ifMissing`, an existing
 * file is left untouched; otherwise an existing file is an error (never overwritten).
 * Returns whether a key was written.
 */
export async function writePrivateKeyFile (file: string, algorithm: JwtAlgorithm, ifMissing = false): Promise<boolean> {
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 })
  try {
    await writeFile(file, await generatePrivateKeyPem(algorithm), { mode: 0o600, flag: 'wx' })
    return true
  } catch (error) {
    if (ifMissing && (error as NodeJS.ErrnoException).code === 'EEXIST') return false
    throw error
  }
}

const PRIVATE_KEY_PEM = /-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----/

/**
 * A file holding a secret must be accessible to its owner only, like ssh's keys: a start with a
 * key that other users of the machine can read is refused. `what` names the secret in the error.
 */
async function checkOwnerOnly (variable: string, file: string, what: string): Promise<void> {
  const mode = (await stat(file)).mode & 0o777
  if ((mode & 0o077) !== 0) {
    throw new Error(`${variable}: ${file} holds ${what} that group or others can access (mode ${mode.toString(8).padStart(4, '0')}); make it readable by its owner only: chmod 600 ${file}`)
  }
}

/** Reads a PEM file a setting names; a private key in it must be accessible to its owner only. */
export async function readKeyFile (variable: string, file: string): Promise<string> {
  const pem = await readSettingFile(variable, file)
  if (PRIVATE_KEY_PEM.test(pem)) await checkOwnerOnly(variable, file, 'a private key')
  return pem
}

/** The JWT algorithm a key is for, or undefined for a key this service does not use. */
function algorithmOf (key: KeyObject): JwtAlgorithm | undefined {
  if (key.asymmetricKeyType === 'ed25519') return 'EdDSA'
  if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1') return 'ES256'
  if (key.asymmetricKeyType === 'rsa' && (key.asymmetricKeyDetails?.modulusLength ?? 0) >= 2048) return 'RS256'
  return undefined
}

const KEY_REQUIREMENT: Record<JwtAlgorithm, string> = {
  EdDSA: 'an Ed25519 key',
  ES256: 'an EC P-256 key',
  RS256: 'an RSA key of at least 2048 bits'
}

/**
 * The members that define a public key, in lexicographic order (RFC 7638). Picked one by one,
 * so nothing private can ever be published.
 */
function publicMembers (jwk: JsonWebKey): Record<string, string | undefined> {
  return jwk.kty === 'OKP'
    ? { crv: jwk.crv, kty: jwk.kty, x: jwk.x }
    : jwk.kty === 'EC'
      ? { crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y }
      : { e: jwk.e, kty: jwk.kty, n: jwk.n }
}

function verificationKey (publicKey: KeyObject, algorithm: JwtAlgorithm): VerificationKey {
  const members = publicMembers(publicKey.export({ format: 'jwk' }))
  // The kid is the RFC 7638 thumbprint: SHA-256 of exactly those members.
  const kid = createHash('sha256').update(JSON.stringify(members)).digest('base64url')
  return {
    algorithm,
    kid,
    publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    jwk: { ...members, kty: members.kty ?? '', kid, alg: algorithm, use: 'sig' }
  }
}

/** Parses a PEM private key and checks it fits the algorithm; `source` names it in errors. */
export function signingKeyFromPem (pem: string, algorithm: JwtAlgorithm, source: string): SigningKey {
  let privateKey: KeyObject
  try {
    privateKey = createPrivateKey(pem)
  } catch {
    throw new Error(`${source} does not hold a PEM private key`)
  }
  if (algorithmOf(privateKey) !== algorithm) {
    throw new Error(`${source} must hold ${KEY_REQUIREMENT[algorithm]} for JWT_ALGORITHM=${algorithm}`)
  }
  return {
    ...verificationKey(createPublicKey(privateKey), algorithm),
    privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()
  }
}

/** A verify-only key from a PEM public or private key (only its public part is kept). */
export function verificationKeyFromPem (pem: string, source: string): VerificationKey {
  let publicKey: KeyObject
  try {
    publicKey = createPublicKey(pem)
  } catch {
    throw new Error(`${source} does not hold a PEM public or private key`)
  }
  const algorithm = algorithmOf(publicKey)
  if (algorithm === undefined) throw new Error(`${source} must hold an Ed25519, EC P-256 or RSA (2048+ bits) key`)
  return verificationKey(publicKey, algorithm)
}

/**
 * The key tokens are signed with: JWT_PRIVATE_KEY_FILE when set. Without it, one is generated on
 * first start and kept where `generated` says (DATA_DIR, embedded mode), which throws where no key
 * may be generated (Redis mode: every replica must be given the same key).
 */
async function loadSigningKey (config: Config, generated: GeneratedKeyPlace): Promise<SigningKey> {
  if (config.JWT_PRIVATE_KEY_FILE !== undefined) {
    const pem = await readKeyFile('JWT_PRIVATE_KEY_FILE', config.JWT_PRIVATE_KEY_FILE)
    return signingKeyFromPem(pem, config.JWT_ALGORITHM, 'JWT_PRIVATE_KEY_FILE')
  }
  const file = await generated.prepare()
  await writePrivateKeyFile(file, config.JWT_ALGORITHM, true)
  return signingKeyFromPem(await readKeyFile('DATA_DIR', file), config.JWT_ALGORITHM, file)
}

/** The signing key plus the verify-only keys of JWT_VERIFY_KEY_FILES (keys being rotated in or out). */
async function loadKeyRing (config: Config, generated: GeneratedKeyPlace): Promise<KeyRing> {
  const signingKey = await loadSigningKey(config, generated)
  const verificationKeys = new Map<string, VerificationKey>([[signingKey.kid, signingKey]])
  for (const file of listSetting(config.JWT_VERIFY_KEY_FILES)) {
    const key = verificationKeyFromPem(await readKeyFile('JWT_VERIFY_KEY_FILES', file), `JWT_VERIFY_KEY_FILES (${file})`)
    if (!verificationKeys.has(key.kid)) verificationKeys.set(key.kid, key)
  }
  return { signingKey, verificationKeys }
}

/**
 * Reads JWT_KEY_ENCRYPTION_KEY_FILE: 32 bytes as base64 (`openssl rand -base64 32`), in a file
 * accessible to its owner only. Errors name the setting and never show the content.
 */
async function readKeyEncryptionKey (file: string): Promise<KeyEncryptionKey> {
  const text = (await readSettingFile('JWT_KEY_ENCRYPTION_KEY_FILE', file)).trim()
  await checkOwnerOnly('JWT_KEY_ENCRYPTION_KEY_FILE', file, 'a key-encryption key')
  const bytes = Buffer.from(text, 'base64')
  if (bytes.length !== KEY_ENCRYPTION_KEY_BYTES || bytes.toString('base64') !== text) {
    throw new Error(`JWT_KEY_ENCRYPTION_KEY_FILE: ${file} must hold ${KEY_ENCRYPTION_KEY_BYTES} random bytes as base64 (create it with \`openssl rand -base64 32\`)`)
  }
  return new KeyEncryptionKey(bytes)
}

/** Where embedded mode keeps the key it generates (storage/stores.ts knows the mode). */
export interface GeneratedKeyPlace {
  /** The file to generate the key in, its directory made ready; throws where no key may be generated (Redis mode). */
  prepare: () => Promise<string>
  /** That file, where embedded mode may have generated a key before; undefined in Redis mode. */
  file: string | undefined
}

/**
 * The keys as configured, loaded before the app opens anything so that a missing or unfit file
 * stops the start cleanly: the key files' ring, or for managed keys (JWT_KEY_ROTATION_SECONDS) the
 * key-encryption key and the key file's key they start from, if there is one.
 */
export type KeySource =
  | { managed: false, keyRing: KeyRing }
  | { managed: true, kek: KeyEncryptionKey, fileKey: SigningKey | undefined }

export async function loadKeySource (config: Config, generated: GeneratedKeyPlace): Promise<KeySource> {
  if (config.JWT_KEY_ROTATION_SECONDS === 0) return { managed: false, keyRing: await loadKeyRing(config, generated) }
  const kek = await readKeyEncryptionKey(config.JWT_KEY_ENCRYPTION_KEY_FILE as string)
  // The key that signed until now, so its tokens stay valid: the configured file, or the one embedded mode generated.
  const [variable, file] = config.JWT_PRIVATE_KEY_FILE !== undefined ? ['JWT_PRIVATE_KEY_FILE', config.JWT_PRIVATE_KEY_FILE] : ['DATA_DIR', generated.file]
  if (file === undefined || (variable === 'DATA_DIR' && !existsSync(file))) return { managed: true, kek, fileKey: undefined }
  return { managed: true, kek, fileKey: signingKeyFromPem(await readKeyFile(variable, file), config.JWT_ALGORITHM, file) }
}
