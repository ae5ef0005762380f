/** A stored account. `username` is the canonical form shown back to clients. */
export interface User {
  username: string
  passwordHash: string
  createdAt: number
  updatedAt: number
  /** A disabled account cannot log in, and its tokens are refused. */
  disabled?: boolean
  /** Unix ms: tokens issued at or before it are refused (set by a password change and by disabling). */
  tokensValidAfter?: number
}

/** Whether a token issued at `issuedAt` (Unix seconds, its `iat`) still speaks for this account. */
export function acceptsTokenIssuedAt (user: User, issuedAt: number): boolean {
  if (user.disabled === true) return false
  // iat has whole seconds: a token from the very second of a password change or disabling is
  // refused too, one from the second the account was created (a re-created name's) is not.
  return issuedAt > Math.floor((user.tokensValidAfter ?? 0) / 1000) && issuedAt >= Math.floor(user.createdAt / 1000)
}

/**
 * Where accounts live. Two implementations: Redis (shared by replicas) and a file under
 * DATA_DIR (embedded, single instance). Lookups are by username, matched case-insensitively
 * after Unicode NFKC normalization (see usernameKey).
 */
export interface UserRepository {
  find (username: string): Promise<User | undefined>
  /** Throws UserExistsError when the username (by usernameKey) is taken. */
  create (user: User): Promise<void>
  /**
   * Replaces the hash only if it still equals `expectedHash`, so a transparent rehash at login
   * never overwrites a password changed meanwhile. Returns whether it replaced it.
   */
  replacePasswordHash (username: string, expectedHash: string, newHash: string): Promise<boolean>
  /** Sets a new hash unconditionally (password change) and ends earlier tokens. Returns false when there is no such user. */
  setPasswordHash (username: string, newHash: string): Promise<boolean>
  /** Disables (ending earlier tokens) or enables the account. Returns false when there is no such user. */
  setDisabled (username: string, disabled: boolean): Promise<boolean>
  remove (username: string): Promise<boolean>
  /** Canonical usernames, sorted. */
  list (): Promise<string[]>
  /**
   * At most `limit` accounts in the order of list() after the username `cursor` (from the first
   * without one), and the cursor of the next page when there may be more.
   */
  page (cursor: string | undefined, limit: number): Promise<UserPage>
}

export interface UserPage {
  users: User[]
  /** The `cursor` of the next page; undefined on the last. */
  next?: string
}

/** The page of `usernames` (sorted) after `cursor`, for a store that lists every username to page them. */
export async function pageOfUsernames (usernames: string[], cursor: string | undefined, limit: number, find: (username: string) => Promise<User | undefined>): Promise<UserPage> {
  const after = usernames.filter((username) => cursor === undefined || username > cursor)
  const page = after.slice(0, limit)
  // An account removed meanwhile is left out.
  const users = (await Promise.all(page.map(find))).filter((user) => user !== undefined)
  return after.length > limit ? { users, next: page[page.length - 1] } : { users }
}

export class UserExistsError extends Error {
  constructor (username: string) {
    super(`User "${username}" already exists`)
    this.name = 'UserExistsError'
  }
}

/** The canonical form of a username as entered: NFKC-normalized and trimmed of nothing else. */
export function canonicalUsername (username: string): string {
  return username.normalize('NFKC')
}

/** The lookup key: canonical form, case-folded, so "John.Doe" and "john.doe" are one account. */
export function usernameKey (username: string): string {
  return canonicalUsername(username).toLowerCase()
}
