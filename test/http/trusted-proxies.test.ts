import proxyAddr from '@fastify/proxy-addr'
import t from 'tap'
import { REMEMBERED_ADDRESSES, proxyTrust } from '../../src/http/trusted-proxies.ts'

const PROXIES = ['127.0.0.1', '10.0.0.0/8', 'fd00::/8']
const ADDRESSES = ['127.0.0.1', '::ffff:127.0.0.1', '127.0.0.2', '10.1.2.3', '::ffff:10.1.2.3', '11.0.0.1', 'fd00::1', 'fe80::1', '::1', 'not an address', '']

t.test('answers as proxy-addr does, for every form of an address, the first time and every time after', async (t) => {
  const compiled = proxyAddr.compile(PROXIES)
  const trust = proxyTrust(PROXIES)
  for (const round of ['first', 'remembered']) {
    for (const address of ADDRESSES) t.equal(trust(address, 0), compiled(address, 0), `${round}: ${JSON.stringify(address)}`)
  }
  t.ok(trust('10.1.2.3', 0) && !trust('11.0.0.1', 0), 'a proxy in the CIDR is trusted, an address outside is not')
})

t.test('answers stay right through a flood of new peers, more than the table holds', async (t) => {
  const trust = proxyTrust(PROXIES)
  t.equal(trust('10.0.0.1', 0), true)
  let trustedStrangers = 0
  for (let i = 0; i < REMEMBERED_ADDRESSES * 3; i++) if (trust(`11.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, 0)) trustedStrangers++
  t.equal(trustedStrangers, 0, 'no address outside TRUST_PROXY is trusted')
  t.equal(trust('10.0.0.1', 0), true, 'a proxy is still trusted after the table was emptied')
  t.equal(trust('11.0.0.1', 0), false)
})
