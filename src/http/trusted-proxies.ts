import proxyAddr from '@fastify/proxy-addr'

/** How many addresses' answers are kept before the table is emptied and refilled. */
export const REMEMBERED_ADDRESSES = 1024

/**
 * fastify's trustProxy for TRUST_PROXY's addresses and CIDRs: proxy-addr's own check, with each
 * address's answer remembered. fastify works `request.ip` out again each time it is read (the
 * limits, the audit line: two to four times a request), and each time proxy-addr parses the
 * addresses it checks with ipaddr.js's regular expressions. The hops are checked up to the first
 * untrusted one, so the table holds mostly the proxies' addresses; a stream of new ones (peers
 * that connect directly, clients that send an X-Forwarded-For of their own) empties it when it
 * fills, so it never holds more than REMEMBERED_ADDRESSES. The answer for an address never
 * changes, so a remembered one is never stale.
 */
export function proxyTrust (proxies: string[]): (address: string, hop: number) => boolean {
  const trusted = proxyAddr.compile(proxies)
  const answers = new Map<string, boolean>()
  return (address, hop) => {
    let answer = answers.get(address)
    if (answer === undefined) {
      answer = trusted(address, hop)
      if (answers.size >= REMEMBERED_ADDRESSES) answers.clear()
      answers.set(address, answer)
    }
    return answer
  }
}
