import t from 'tap'
import { clientAddress } from '../../../src/http/client-address.ts'
import { PASSWORD, addUser, buildTestApp } from '../../helper.ts'
import { redisTopologyTest } from '../../redis-topologies.ts'

const loginRequest = (body: unknown = { username: 'alice', password: PASSWORD }, remoteAddress = '10.1.1.1') => ({
  method: 'POST' as const,
  url: '/api/auth/login',
  remoteAddress,
  headers: { 'content-type': 'application/json' },
  payload: JSON.stringify(body)
})

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

t.test('the 6th attempt in a minute is 429 with Retry-After and RateLimit headers; every attempt counts', async (t) => {
  const app = await buildTestApp(t)
  await addUser(app, 'alice', PASSWORD)
  const statuses = []
  for (const password of [PASSWORD, 'wrong-password-1', PASSWORD, 'wrong-password-2', PASSWORD]) {
    statuses.push((await app.inject(loginRequest({ username: 'alice', password }))).statusCode)
  }
  t.same(statuses, [200, 401, 200, 401, 200], 'successes and failures both pass while under the limit')

  const limited = await app.inject(loginRequest())
  t.equal(limited.statusCode, 429)
  t.same(Object.keys(limited.json()), ['message'])
  t.match(limited.json().message, /^Too many login attempts, retry in \d+ (seconds?|minutes?)$/)
  const retryAfter = Number(limited.headers['retry-after'])
  t.ok(retryAfter > 0 && retryAfter <= 60, `Retry-After ${retryAfter}`)
  t.equal(limited.headers['ratelimit-limit'], '5')
  t.equal(limited.headers['ratelimit-remaining'], '0')
  t.equal(limited.headers['ratelimit-reset'], String(retryAfter))

  const otherClient = await app.inject(loginRequest(undefined, '10.2.2.2'))
  t.equal(otherClient.statusCode, 200, 'another client IP has its own limit')
})

t.test('a rejected client\'s later attempts get the very answer of its first rejection', async (t) => {
  const app = await buildTestApp(t)
  for (let i = 0; i < 5; i++) await app.inject(loginRequest({ username: 'nobody', password: 'x' }))
  // The first from the limiter itself, the rest from the hook that answers a known rejected client.
  const rejections = [await app.inject(loginRequest()), await app.inject(loginRequest()), await app.inject({ ...loginRequest(), payload: '{not json' })]
  const [first, ...later] = rejections
  const shape = (response: typeof first) => ({
    statusCode: response.statusCode,
    headers: Object.keys(response.headers).filter((name) => name !== 'date' && name !== 'connection').sort(),
    limit: response.headers['ratelimit-limit'],
    remaining: response.headers['ratelimit-remaining'],
    body: Object.keys(response.json())
  })
  for (const response of later) {
    t.same(shape(response), shape(first))
    t.equal(response.json().message, first.json().message)
    const [before, after] = [Number(first.headers['retry-after']), Number(response.headers['retry-after'])]
    t.ok(after <= before && after >= before - 1, `Retry-After ${after} after ${before}`)
    t.equal(response.headers['ratelimit-reset'], response.headers['retry-after'])
  }
  t.equal(first.statusCode, 429)
  t.match(first.headers, { 'x-request-id': /./, 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' })
})

t.test('a limited attempt is rejected before the body is even parsed', async (t) => {
  const app = await buildTestApp(t)
  for (let i = 0; i < 5; i++) await app.inject(loginRequest({ username: 'nobody', password: 'x' }))
  const malformed = await app.inject({ ...loginRequest(), payload: '{not json' })
  t.equal(malformed.statusCode, 429, 'malformed JSON would be 400 had the body been parsed')
})

t.test('rolling window: once the oldest attempt ages out exactly one more is allowed', async (t) => {
  // Timed from when the attempts were made, with 2 s between the first and the second: on a loaded
  // machine an attempt (an argon2 verification) can take a second or more.
  const windowMs = 4000
  const app = await buildTestApp(t, { RATE_LIMIT_MAX: '3', RATE_LIMIT_WINDOW_MS: String(windowMs) })
  const attempt = async () => (await app.inject(loginRequest({ username: 'nobody', password: 'x' }))).statusCode
  const firstAt = Date.now()
  t.equal(await attempt(), 401)
  await sleep(2000)
  t.equal(await attempt(), 401)
  t.equal(await attempt(), 401)
  t.equal(await attempt(), 429, 'the 4th inside the window')
  await sleep(firstAt + windowMs + 800 - Date.now()) // the first attempt has aged out, the other two have not
  t.equal(await attempt(), 401, 'one slot freed by the oldest attempt')
  t.equal(await attempt(), 429, 'and only one')
})

t.test('client IP: X-Forwarded-For counts only from a trusted proxy', async (t) => {
  const untrusting = await buildTestApp(t)
  const statuses = []
  for (let i = 0; i < 6; i++) {
    const request = loginRequest({ username: 'nobody', password: 'x' }, '10.1.1.1')
    statuses.push((await untrusting.inject({ ...request, headers: { ...request.headers, 'x-forwarded-for': `203.0.113.${i}` } })).statusCode)
  }
  t.same(statuses, [401, 401, 401, 401, 401, 429], 'a spoofed X-Forwarded-For does not escape the limit')

  const behindProxy = await buildTestApp(t, { TRUST_PROXY: '10.0.0.0/8' })
  const fromProxy = async (forwardedFor: string, remoteAddress = '10.9.9.9') => {
    const request = loginRequest({ username: 'nobody', password: 'x' }, remoteAddress)
    return (await behindProxy.inject({ ...request, headers: { ...request.headers, 'x-forwarded-for': forwardedFor } })).statusCode
  }
  for (let i = 0; i < 5; i++) t.equal(await fromProxy('198.51.100.7'), 401)
  t.equal(await fromProxy('198.51.100.7'), 429, 'the forwarded client is limited')
  t.equal(await fromProxy('198.51.100.8'), 401, 'another forwarded client is not')
  t.equal(await fromProxy('198.51.100.99, 198.51.100.7'), 429,
    'a client-prepended address does not change who the proxy says is calling')
  t.equal(await fromProxy('198.51.100.8', '192.0.2.1'), 401, 'an untrusted peer is limited by its own address')
})

redisTopologyTest(t, 'Redis mode: two replicas on one Redis share one limit', async (t, { env }) => {
  const replicaA = await buildTestApp(t, env)
  const replicaB = await buildTestApp(t, env)
  await addUser(replicaA, 'alice', PASSWORD)

  const statuses = []
  for (const replica of [replicaA, replicaB, replicaA, replicaB, replicaA, replicaB, replicaA]) {
    statuses.push((await replica.inject(loginRequest())).statusCode)
  }
  t.same(statuses, [200, 200, 200, 200, 200, 429, 429])

  const tokenFromA = (await replicaA.inject(loginRequest(undefined, '10.3.3.3'))).json().data.accessToken
  t.equal((await replicaB.accessTokens.verify(tokenFromA, 'user')).sub, 'alice', 'replicas share the signing key')
})

t.test('IPv6: one /64 is one client in every written form; IPv4-mapped IPv6 is its IPv4 address', async (t) => {
  const app = await buildTestApp(t, { TRUST_PROXY: '10.0.0.0/8' })
  // A username per attempt, so only the per-client limit applies, never the per-account one.
  let attempts = 0
  const fromProxy = async (forwardedFor: string) => {
    const request = loginRequest({ username: `nobody-${attempts++}`, password: 'x' }, '10.9.9.9')
    return (await app.inject({ ...request, headers: { ...request.headers, 'x-forwarded-for': forwardedFor } })).statusCode
  }
  const sameNetwork = ['2001:db8::1', '2001:DB8:0::2', '2001:db8::ffff', '2001:0db8:0000:0000:0000:0000:0000:0001', '2001:db8::abcd:1']
  for (const address of sameNetwork) t.equal(await fromProxy(address), 401, address)
  t.equal(await fromProxy('2001:db8::1:2:3:4'), 429, 'the sixth address of the /64 is limited')
  t.equal(await fromProxy('2001:db8:0:1::1'), 401, 'the next /64 is another client')

  for (let i = 0; i < 5; i++) t.equal(await fromProxy('198.51.100.20'), 401)
  t.equal(await fromProxy('::ffff:198.51.100.20'), 429, 'the IPv4-mapped form is the same client')
  t.equal(await fromProxy('::ffff:c633:6414'), 429, 'written in hex too')
})

t.test('RATE_LIMIT_IPV6_PREFIX sets the network size', async (t) => {
  t.equal(clientAddress('2001:db8:1:2:3:4:5:6', 64), '2001:db8:1:2::/64')
  t.equal(clientAddress('2001:db8:1:2:3:4:5:6', 48), '2001:db8:1::/48')
  t.equal(clientAddress('2001:db8:1:2:3:4:5:6', 128), '2001:db8:1:2:3:4:5:6/128')
  t.equal(clientAddress('2001:db8:1:2:3:4:5:6', 56), '2001:db8:1::/56')
  t.equal(clientAddress('2001:db8:1:2ff:3:4:5:6', 56), '2001:db8:1:200::/56', 'a prefix inside a group')
  t.equal(clientAddress('::ffff:127.0.0.1', 64), '127.0.0.1')
  t.equal(clientAddress('192.0.2.10', 64), '192.0.2.10', 'a canonical IPv4 address is itself')
  t.equal(clientAddress('192.0.2.010', 64), '192.0.2.8', 'a leading zero is octal, as inet_aton reads it, so not the same address as .10')
  t.equal(clientAddress('0300.0.2.10', 64), '192.0.2.10', 'every written form of one IPv4 address is one address')
  t.equal(clientAddress('256.0.2.10', 64), '256.0.2.10', 'not an address')
  t.equal(clientAddress('not an address', 64), 'not an address')
  const app = await buildTestApp(t, { TRUST_PROXY: '10.0.0.0/8', RATE_LIMIT_IPV6_PREFIX: '128' })
  const fromProxy = async (forwardedFor: string) => (await app.inject({
    ...loginRequest({ username: 'nobody', password: 'x' }, '10.9.9.9'),
    headers: { 'content-type': 'application/json', 'x-forwarded-for': forwardedFor }
  })).statusCode
  const statuses = []
  for (let i = 1; i <= 6; i++) statuses.push(await fromProxy(`2001:db8::${i}`))
  t.same(statuses, [401, 401, 401, 401, 401, 401], 'with /128 every address is its own client')
})
