import ipaddr from 'ipaddr.js'

const OCTET = '(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])'
/** Dotted decimal without leading zeros: the form ipaddr.js writes an IPv4 address in. */
const CANONICAL_IPV4 = new RegExp(`^${OCTET}(?:\\.${OCTET}){3}$`)

/**
 * Who a request counts as, for every per-client limit: the address parsed, so every written form
 * of one address is one client; an IPv4-mapped IPv6 address counts as its IPv4 address; and an
 * IPv6 address counts as its /`ipv6Prefix` network (RATE_LIMIT_IPV6_PREFIX, 64 by default), since
 * one host usually owns a whole /64 and could otherwise take a fresh budget from each address in it.
 */
export function clientAddress (address: string, ipv6Prefix: number): string {
  // The common case, an IPv4 address already written canonically, is itself: no parsing.
  if (CANONICAL_IPV4.test(address)) return address
  let parsed: ipaddr.IPv4 | ipaddr.IPv6
  try {
    parsed = ipaddr.process(address)
  } catch {
    // Not an address (a unix socket, or a test's made-up peer): itself is the best name there is.
    return address
  }
  if (parsed.kind() === 'ipv4') return parsed.toString()
  const bytes = parsed.toByteArray()
  for (let bit = ipv6Prefix; bit < 128; bit++) bytes[bit >> 3] &= ~(0x80 >> (bit & 7))
  return `${ipaddr.fromByteArray(bytes).toString()}/${ipv6Prefix}`
}
