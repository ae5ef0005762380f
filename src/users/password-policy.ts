import { readFileSync } from 'node:fs'
import type { Config } from '../config.ts'
import { normalizePassword } from './passwords.ts'
import { usernameKey } from './repository.ts'

/** Long passphrases are welcome; unbounded input to argon2 is not. */
export const PASSWORD_MAX_LENGTH = 1024

/** Common and breached passwords, one a line, made by scripts/build-common-passwords.ts. */
export const COMMON_PASSWORDS_FILE = new URL('../../assets/common-passwords.txt', import.meta.url)

/**
 * zxcvbn's score (0-4) a password needs: 3 means its estimate is at least 10^8 guesses, out of reach
 * of online guessing through the throttle and costly offline against argon2id.
 */
export const MIN_PASSWORD_SCORE = 3

/** The service's name: a context word no password may contain (NIST SP 800-63B rev. 4 §3.1.1.2). */
export const SERVICE_NAME = 'auth-service'

export interface PasswordPolicyOptions {
  username: string
  minLength: number
  /** Besides the username, words of this deployment no password may contain (see passwordContextWords). */
  contextWords?: string[]
}

/** The context words of a deployment: the service's name and JWT_ISSUER's host (JWT_ISSUER may be a URL or a plain name). */
export function passwordContextWords (config: Pick<Config, 'JWT_ISSUER'>): string[] {
  let issuerHost = config.JWT_ISSUER
  try {
    issuerHost = new URL(config.JWT_ISSUER).hostname
  } catch {
    // Not a URL: the name itself.
  }
  return [...new Set([SERVICE_NAME, issuerHost])]
}

/** Length as a person counts it: code points of the normalized password, not UTF-16 units. */
export function passwordLength (password: string): number {
  return [...normalizePassword(password)].length
}

/** The form compared with the breached list and the username: normalized and lowercased. */
export function caseFoldedPassword (password: string): string {
  return normalizePassword(password).toLowerCase()
}

let commonPasswords: Set<string> | undefined

function isCommonPassword (password: string): boolean {
  // Read on first use rather than at import, so the build script can import this module before the file exists.
  commonPasswords ??= new Set(readFileSync(COMMON_PASSWORDS_FILE, 'utf8').split(/\r?\n/))
  return commonPasswords.has(caseFoldedPassword(password))
}

const ESTIMATED_LENGTH = 100

interface Estimate {
  score: number
  feedback: { warning: string | null }
}
let estimator: Promise<(password: string, userInputs: string[]) => Estimate> | undefined

/**
 * zxcvbn's guess estimate with its common and English dictionaries and keyboard graphs. Loaded on
 * first use: the dictionaries take most of a second to load, which every other users command
 * (list, remove...) would pay for nothing.
 */
async function estimate (password: string, userInputs: string[]): Promise<Estimate> {
  estimator ??= (async () => {
    const [{ zxcvbn, zxcvbnOptions }, common, english] = await Promise.all([
      import('@zxcvbn-ts/core'), import('@zxcvbn-ts/language-common'), import('@zxcvbn-ts/language-en')
    ])
    zxcvbnOptions.setOptions({ graphs: common.adjacencyGraphs, dictionary: { ...common.dictionary, ...english.dictionary }, translations: english.translations })
    return zxcvbn
  })()
  // Only the first characters are estimated (zxcvbn's own maxLength applies to its async form
  // only): it takes seconds on a 1024-character password, and 100 easy ones are reason enough to refuse.
  return (await estimator)([...password].slice(0, ESTIMATED_LENGTH).join(''), userInputs)
}

/**
 * NIST SP 800-63B rev. 4 §3.1.1.2: length bounds, no composition rules, not a known breached
 * password, not containing the username or a context word, and not guessable from repetition,
 * sequences, keyboard walks or dictionary words (zxcvbn's score at least MIN_PASSWORD_SCORE).
 * Returns the message of the first rule broken, or undefined.
 */
export async function passwordPolicyViolation (password: string, { username, minLength, contextWords = [] }: PasswordPolicyOptions): Promise<string | undefined> {
  const length = passwordLength(password)
  if (length < minLength) return `Password must be at least ${minLength} characters`
  if (length > PASSWORD_MAX_LENGTH) return `Password must be at most ${PASSWORD_MAX_LENGTH} characters`
  if (isCommonPassword(password)) return 'Password is too common: it appears in lists of breached passwords'
  const folded = caseFoldedPassword(password)
  const key = usernameKey(username)
  // Every password "contains" an empty username.
  if (key !== '' && folded.includes(key)) return 'Password must not contain the username'
  const contextWord = contextWords.map(usernameKey).find((word) => word.length >= 4 && folded.includes(word))
  if (contextWord !== undefined) return `Password must not contain "${contextWord}"`
  const { score, feedback } = await estimate(normalizePassword(password), [key, ...contextWords])
  if (score < MIN_PASSWORD_SCORE) {
    return `Password is too easy to guess${feedback.warning !== null && feedback.warning !== '' ? ` (${feedback.warning.replace(/\.$/, '')})` : ''}: a few unrelated words make a strong passphrase`
  }
  return undefined
}
