import { Redis } from 'ioredis'

/**
 * An ioredis client that fails fast: with Redis unreachable a command errors at once
 * instead of waiting in the offline queue or a retry loop, while the client keeps
 * reconnecting in the background so the service recovers by itself.
 */
export function createRedisClient (url: string): Redis {
  return new Redis(url, {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    connectTimeout: 1000,
    commandTimeout: 800,
    retryStrategy: (attempt) => Math.min(attempt * 100, 1000),
    lazyConnect: true
  })
}

/**
 * Connects and waits until the client is ready, or fails with the reason. A failed connect leaves
 * no client reconnecting in the background, which would keep a command-line process from exiting.
 */
export async function connectRedisClient (url: string): Promise<Redis> {
  const redis = createRedisClient(url)
  let lastError: Error | undefined
  redis.on('error', (error: Error) => { lastError = error })
  try {
    await redis.connect()
    return redis
  } catch (error) {
    redis.disconnect()
    throw new Error(`Cannot connect to Redis: ${(lastError ?? error as Error).message}`)
  }
}

/**
 * Whether an error means Redis could not serve a command (down, unreachable, timed out,
 * out of memory, read-only replica...), which the service answers with 503.
 */
export function isRedisUnavailableError (error: unknown): boolean {
  if (!(error instanceof Error)) return false
  if (error.name === 'ReplyError' || error.name === 'MaxRetriesPerRequestError') return true
  return /enableOfflineQueue|Connection is closed|Command timed out|ECONNREFUSED|ECONNRESET|ETIMEDOUT/.test(error.message)
}
