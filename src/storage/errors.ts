import { ReplicaAckTimeoutError } from './redis/connection.ts'

/**
 * Whether an error means the stores could not serve a command: Redis down, unreachable or timed
 * out, out of memory, a read-only replica, no replica acknowledging a write... The service answers
 * such errors with 503 and counts them; an embedded store's errors are faults (500).
 */
export function isStorageUnavailable (error: unknown): boolean {
  if (!(error instanceof Error)) return false
  if (error.name === 'ReplyError' || error.name === 'MaxRetriesPerRequestError' || error instanceof ReplicaAckTimeoutError) return true
  return /enableOfflineQueue|Connection is closed|Command timed out|ECONNREFUSED|ECONNRESET|ETIMEDOUT|Cluster isn't ready|Failed to refresh slots|Too many Cluster redirections|All sentinels are unreachable/.test(error.message)
}
