import type { FastifyReply } from 'fastify'

/**
 * The response envelope of every successful auth route. `dataAt` receives the response time,
 * so times relative to it (remainingTime) agree exactly with meta.generatedAt.
 */
export function envelope<T> (reply: FastifyReply, message: string, dataAt: (generatedAt: number) => T) {
  const generatedAt = Date.now()
  return {
    data: dataAt(generatedAt),
    meta: { executionTime: Math.round(reply.elapsedTime), generatedAt },
    message
  }
}
