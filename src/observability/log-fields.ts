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
