import { readFileSync } from 'node:fs'
import { normalizePassword } from './passwords.js'
import { usernameKey } from './repository.js'

/** Long passphrases are welcome; unbounded input to argon2 is not. */
export const PASSWORD_MAX_LENGTH = 1024

/** Common and breached passwords, one a line, made by scripts/build-common-passwords.ts. */
export const COMMON_PASSWORDS_FILE = new URL('../../assets/common-passwords.txt', import.meta.url)

export interface PasswordPolicyOptions {
  username: string
  minLength: number
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

/**
 * NIST SP 800-63B rev. 4: length bounds, no composition rules, not a known breached password,
 * not containing the username. Returns the message of the first rule broken, or undefined.
 */
export function passwordPolicyViolation (password: string, { username, minLength }: PasswordPolicyOptions): string | undefined {
  const length = passwordLength(password)
  if (length < minLength) return `Password must be at least ${minLength} characters`
  if (length > PASSWORD_MAX_LENGTH) return `Password must be at most ${PASSWORD_MAX_LENGTH} characters`
  if (isCommonPassword(password)) return 'Password is too common: it appears in lists of breached passwords'
  const key = usernameKey(username)
  // Every password "contains" an empty username.
  if (key !== '' && caseFoldedPassword(password).includes(key)) return 'Password must not contain the username'
  return undefined
}
