import ipaddr from 'ipaddr.js'

/**
 * Who a request counts as, for every per-client limit: the address parsed, so every written form
 * of one address is one client; an IPv4-mapped IPv6 address counts as its IPv4 address; and an
 * IPv6 address counts as its /`ipv6Prefix` network (RATE_LIMIT_IPV6_PREFIX, 64 by default), since
 * one host usually owns a whole /64 and could otherwise take a fresh budget from each address in it.
 */
export function clientKey (address: string, ipv6Prefix: number): string {
  let parsed: ipaddr.IPv4 | ipaddr.IPv6
  try {
    parsed = ipaddr.process(address)
  } catch {
    // Not an address (a unix socket, or a test's made-up peer): itself is the best key there is.
    return address
  }
  if (parsed.kind() === 'ipv4') return parsed.toString()
  const bytes = parsed.toByteArray()
  for (let bit = ipv6Prefix; bit < 128; bit++) bytes[bit >> 3] &= ~(0x80 >> (bit & 7))
  return `${ipaddr.fromByteArray(bytes).toString()}/${ipv6Prefix}`
}
