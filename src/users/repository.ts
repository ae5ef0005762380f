/** A stored account. `username` is the canonical form shown back to clients. */
export interface User {
  username: string
  passwordHash: string
  createdAt: number
  updatedAt: number
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
  /** Sets a new hash unconditionally (password change). Returns false when there is no such user. */
  setPasswordHash (username: string, newHash: string): Promise<boolean>
  remove (username: string): Promise<boolean>
  /** Canonical usernames, sorted. */
  list (): Promise<string[]>
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
