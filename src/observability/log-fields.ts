/**
 * Control characters, format characters (bidirectional overrides and isolates, zero-width marks)
 * and line or paragraph separators: what could forge or disguise a log line when it is read.
 */
const UNPRINTABLE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/gu

/** Whether a client-chosen string holds any character that must never reach a log line. */
export function hasUnprintable (value: string): boolean {
  UNPRINTABLE.lastIndex = 0
  return UNPRINTABLE.test(value)
}

/** A client-chosen string as it may be logged: at most `maxLength` characters, each unprintable one replaced by U+FFFD. */
export function printable (value: string, maxLength = 128): string {
  return value.slice(0, maxLength).replace(UNPRINTABLE, '\uFFFD')
}

/**
 * An error as it may be logged (`log.error({ err: loggableError(error) })`). ioredis attaches the
 * failed command with its arguments to its errors, and an AUTH command's arguments are the
 * username and password: such an error is logged by its type, message and code only.
 */
export function loggableError (error: unknown): unknown {
  if (!(error instanceof Error) || !('command' in error || 'lastNodeError' in error || 'previousErrors' in error)) return error
  const loggable = Object.assign(new Error(error.message), { code: (error as { code?: unknown }).code })
  loggable.name = error.name
  // ioredis' stack lines hold no arguments, and say where the command was sent from.
  loggable.stack = error.stack
  return loggable
}
