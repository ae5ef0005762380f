import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import path from 'node:path'
import type { Config } from '../config.js'

export type JwtAlgorithm = Config['JWT_ALGORITHM']

/** The signing key and what verifiers need to know about it. */
export interface SigningKey {
  algorithm: JwtAlgorithm
  /** RFC 7638 JWK thumbprint of the public key: the same on every replica that loads the same file. */
  kid: string
  privateKeyPem: string
  publicKeyPem: string
  publicKey: KeyObject
}

/** Where embedded mode keeps the key it generated, so tokens survive a restart. */
export const EMBEDDED_KEY_FILE_NAME = 'jwt-signing-key.pem'

export function generatePrivateKeyPem (algorithm: JwtAlgorithm): string {
  const keyPair = algorithm === 'EdDSA'
    ? generateKeyPairSync('ed25519')
    : algorithm === 'ES256'
      ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
      : generateKeyPairSync('rsa', { modulusLength: 3072 })
  return keyPair.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()
}

/**
 * Writes a new private key file readable by its owner only. With `ifMissing`, an existing
 * file is left untouched; otherwise an existing file is an error (never overwritten).
 * Returns whether a key was written.
 */
export async function writePrivateKeyFile (file: string, algorithm: JwtAlgorithm, ifMissing = false): Promise<boolean> {
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 })
  try {
    await writeFile(file, generatePrivateKeyPem(algorithm), { mode: 0o600, flag: 'wx' })
    return true
  } catch (error) {
    if (ifMissing && (error as NodeJS.ErrnoException).code === 'EEXIST') return false
    throw error
  }
}

function keyMatchesAlgorithm (key: KeyObject, algorithm: JwtAlgorithm): boolean {
  switch (algorithm) {
    case 'EdDSA': return key.asymmetricKeyType === 'ed25519'
    case 'ES256': return key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1'
    case 'RS256': return key.asymmetricKeyType === 'rsa' && (key.asymmetricKeyDetails?.modulusLength ?? 0) >= 2048
  }
}

const KEY_REQUIREMENT: Record<JwtAlgorithm, string> = {
  EdDSA: 'an Ed25519 key',
  ES256: 'an EC P-256 key',
  RS256: 'an RSA key of at least 2048 bits'
}

/** RFC 7638: SHA-256 over the required public JWK members in lexicographic order. */
function jwkThumbprint (publicKey: KeyObject): string {
  const jwk = publicKey.export({ format: 'jwk' })
  const members = jwk.kty === 'OKP'
    ? { crv: jwk.crv, kty: jwk.kty, x: jwk.x }
    : jwk.kty === 'EC'
      ? { crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y }
      : { e: jwk.e, kty: jwk.kty, n: jwk.n }
  return createHash('sha256').update(JSON.stringify(members)).digest('base64url')
}

/** Parses a PEM private key and checks it fits the algorithm; `source` names it in errors. */
export function signingKeyFromPem (pem: string, algorithm: JwtAlgorithm, source: string): SigningKey {
  let privateKey: KeyObject
  try {
    privateKey = createPrivateKey(pem)
  } catch {
    throw new Error(`${source} does not hold a PEM private key`)
  }
  if (!keyMatchesAlgorithm(privateKey, algorithm)) {
    throw new Error(`${source} must hold ${KEY_REQUIREMENT[algorithm]} for JWT_ALGORITHM=${algorithm}`)
  }
  const publicKey = createPublicKey(privateKey)
  return {
    algorithm,
    kid: jwkThumbprint(publicKey),
    privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    publicKey
  }
}

/**
 * The key tokens are signed with: JWT_PRIVATE_KEY_FILE when set. Without it, embedded mode
 * generates one on first start and keeps it in DATA_DIR; Redis mode refuses to start, because
 * replicas that each made their own key would reject each other's tokens.
 */
export async function loadSigningKey (config: Config): Promise<SigningKey> {
  if (config.JWT_PRIVATE_KEY_FILE !== undefined) {
    const pem = await readFile(config.JWT_PRIVATE_KEY_FILE, 'utf8').catch((error: NodeJS.ErrnoException) => {
      throw new Error(`JWT_PRIVATE_KEY_FILE cannot be read (${error.code ?? error.message})`)
    })
    return signingKeyFromPem(pem, config.JWT_ALGORITHM, 'JWT_PRIVATE_KEY_FILE')
  }
  if (config.REDIS_URL !== undefined) {
    throw new Error('JWT_PRIVATE_KEY_FILE is required when REDIS_URL is set: all replicas must sign with one shared key (create one with `npm run keys -- generate <file>`)')
  }
  const file = path.join(config.DATA_DIR, EMBEDDED_KEY_FILE_NAME)
  await writePrivateKeyFile(file, config.JWT_ALGORITHM, true)
  return signingKeyFromPem(await readFile(file, 'utf8'), config.JWT_ALGORITHM, file)
}
