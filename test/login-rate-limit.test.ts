import t from 'tap'
import { PASSWORD, addUser, buildTestApp } from './helper.js'
import { redisTopologyTest } from './redis-topologies.js'

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

t.test('a limited attempt is rejected before the body is even parsed', async (t) => {
  const app = await buildTestApp(t)
  for (let i = 0; i < 5; i++) await app.inject(loginRequest({ username: 'nobody', password: 'x' }))
  const malformed = await app.inject({ ...loginRequest(), payload: '{not json' })
  t.equal(malformed.statusCode, 429, 'malformed JSON would be 400 had the body been parsed')
})

t.test('rolling window: once the oldest attempt ages out exactly one more is allowed', async (t) => {
  const app = await buildTestApp(t, { RATE_LIMIT_MAX: '3', RATE_LIMIT_WINDOW_MS: '1500' })
  const attempt = async () => (await app.inject(loginRequest({ username: 'nobody', password: 'x' }))).statusCode
  t.equal(await attempt(), 401)
  await sleep(600)
  t.equal(await attempt(), 401)
  t.equal(await attempt(), 401)
  t.equal(await attempt(), 429, 'the 4th inside the window')
  await sleep(1000) // the first attempt is now older than 1500 ms, the other two are not
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
  t.equal(replicaB.jwt.verify<{ sub: string }>(tokenFromA).sub, 'alice', 'replicas share the signing key')
})
