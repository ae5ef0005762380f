import { Value } from '@sinclair/typebox/value'
import type { Config } from '../config.ts'
import { hasUnprintable } from '../observability/log-fields.ts'
import { LoginRequest } from '../schemas/auth.ts'
import { passwordContextWords, passwordPolicyViolation } from './password-policy.ts'

/**
 * The rules an account's name and password meet when an operator sets them, through the users CLI
 * or the admin API alike. Each returns the message of the rule broken, or undefined.
 */

/** A name a login request can carry (else the account could never log in) and that cannot forge a log line. */
export function usernameViolation (username: string): string | undefined {
  const { minLength, maxLength } = LoginRequest.properties.username
  if (!Value.Check(LoginRequest.properties.username, username)) return `Username must be ${minLength} to ${maxLength} characters`
  // Account names are logged; these characters could forge or disguise a log line.
  if (hasUnprintable(username)) return 'Username must not contain control or bidirectional formatting characters'
  return undefined
}

/** The password policy (password-policy.ts) with this deployment's settings and context words. */
export async function accountPasswordViolation (username: string, password: string, config: Pick<Config, 'PASSWORD_MIN_LENGTH' | 'JWT_ISSUER'>): Promise<string | undefined> {
  return await passwordPolicyViolation(password, { username, minLength: config.PASSWORD_MIN_LENGTH, contextWords: passwordContextWords(config) })
}
