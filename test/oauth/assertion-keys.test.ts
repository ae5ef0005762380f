import { errors as joseErrors, exportJWK, generateKeyPair, type FlattenedJWSInput, type JWK } from 'jose'
import t from 'tap'
import type { Client } from '../../src/clients/client.ts'
import { AssertionKeys, KEY_FETCH_POLICY, KeySetUnavailable } from '../../src/oauth/assertion-keys.ts'
import { startKeyHost, streamKeySet, type Streamed } from './key-host.ts'

// Real key hosts on loopback, as a jwks_uri client's or a workload issuer's: what each may serve,
// and what the service fetches from it. The back-off and the cache run on a clock the test moves.

const MiB = 1024 * 1024
const TOKEN: FlattenedJWSInput = { payload: '', signature: '' }

function keyClient (jwksUri: string): Client {
  return { clientId: 'reports', jwksUri, scopes: ['orders:read'], audiences: ['https://orders.internal'], createdAt: 0, updatedAt: 0 }
}

async function publicJwk (kid: string): Promise<JWK> {
  const { publicKey } = await generateKeyPair('ES256')
  return { ...await exportJWK(publicKey), kid, alg: 'ES256' }
}

/** Looks up the key an ES256 assertion naming `kid` would be verified with. */
async function keyFor (keys: AssertionKeys, url: string, kid: string) {
  return await keys.for(keyClient(url))!({ alg: 'ES256', kid }, TOKEN)
}

/** The error a lookup fails with. */
async function failure (lookup: Promise<unknown>): Promise<Error> {
  return await lookup.then(() => { throw new Error('the lookup succeeded') }, (error: Error) => error)
}

for (const contentLength of [true, false]) {
  t.test(`a 250 MiB key set ${contentLength ? 'with Content-Length' : 'chunked, its length said nowhere'}: refused while it is read`, async (t) => {
    let streamed: Promise<Streamed> | undefined
    const host = await startKeyHost(t, (_request, response) => { streamed = streamKeySet(response, 250 * MiB, { contentLength }) })
    const error = await failure(keyFor(new AssertionKeys(), host.url, 'k'))
    t.type(error, KeySetUnavailable)
    t.equal(error.message, `sent more than ${KEY_FETCH_POLICY.maxBytes} bytes`)
    const { written, complete } = await streamed!
    t.notOk(complete, 'the connection was closed before the host could finish')
    t.ok(written < 16 * MiB, `the host wrote ${(written / MiB).toFixed(1)} MiB (the read plus the sockets' buffers)`)
  })
}

t.test('a set as large as the byte cap, with as many keys as the key cap, is used; one key more is refused', async (t) => {
  const keys = await Promise.all(Array.from({ length: KEY_FETCH_POLICY.maxKeys + 1 }, async (_, i) => await publicJwk(`k${i}`)))
  let served = keys
  const host = await startKeyHost(t, (_request, response) => {
    const body = JSON.stringify({ keys: served })
    response.end(body.padEnd(KEY_FETCH_POLICY.maxBytes, ' '))
  })
  const error = await failure(keyFor(new AssertionKeys(), host.url, 'k0'))
  t.type(error, KeySetUnavailable)
  t.equal(error.message, `sent ${KEY_FETCH_POLICY.maxKeys + 1} keys, more than ${KEY_FETCH_POLICY.maxKeys}`)

  served = keys.slice(0, KEY_FETCH_POLICY.maxKeys)
  const key = await keyFor(new AssertionKeys(), host.url, `k${KEY_FETCH_POLICY.maxKeys - 1}`)
  t.equal((key as CryptoKey).type, 'public')
})

t.test('a host that trickles its answer, or never answers: the time bound is for the whole exchange', async (t) => {
  const trickling = await startKeyHost(t, (_request, response) => {
    response.write('{"keys":[')
    // A byte every 20 ms: a timeout restarted by each chunk would never end.
    const timer = setInterval(() => response.write(' '), 20)
    response.once('close', () => clearInterval(timer))
  })
  const silent = await startKeyHost(t, () => {})
  const timeoutMs = 500
  for (const host of [trickling, silent]) {
    const started = Date.now()
    const error = await failure(keyFor(new AssertionKeys({ timeoutMs }), host.url, 'k'))
    const elapsed = Date.now() - started
    t.type(error, KeySetUnavailable)
    t.equal(error.message, `no whole answer within ${timeoutMs} ms`)
    t.ok(elapsed >= timeoutMs - 5 && elapsed < 4 * timeoutMs, `gave up after ${elapsed} ms`)
  }
})

t.test('a redirect is not followed', async (t) => {
  const elsewhere = await startKeyHost(t, (_request, response) => { response.end(JSON.stringify({ keys: [] })) })
  const host = await startKeyHost(t, (_request, response) => {
    response.writeHead(302, { location: elsewhere.url })
    response.end()
  })
  const error = await failure(keyFor(new AssertionKeys(), host.url, 'k'))
  t.type(error, KeySetUnavailable)
  t.equal(error.message, 'answered HTTP 302')
  t.equal(elsewhere.requests(), 0)
})

t.test('a host answering 500: one fetch for concurrent lookups, then a growing back-off, capped; recovery resets it', async (t) => {
  let failing = true
  const jwk = await publicJwk('k')
  const host = await startKeyHost(t, (_request, response) => {
    if (failing) response.statusCode = 500
    response.end(failing ? '' : JSON.stringify({ keys: [jwk] }))
  })
  const clock = { now: 1_000_000 }
  const reported: string[] = []
  const keys = new AssertionKeys({ now: () => clock.now, onFetchFailure: (url, reason) => reported.push(`${url} ${reason}`) })
  const lookUp40 = async () => await Promise.all(Array.from({ length: 40 }, async () => await failure(keyFor(keys, host.url, `unknown-${crypto.randomUUID()}`))))

  const first = await lookUp40()
  t.equal(host.requests(), 1, 'one fetch for 40 concurrent lookups')
  t.ok(first.every((error) => error instanceof KeySetUnavailable && error.retryAfterMs === KEY_FETCH_POLICY.firstBackoffMs), 'each waits out the first back-off')
  t.same(reported, [`${host.url} answered HTTP 500`], 'the failure is reported once')

  clock.now += KEY_FETCH_POLICY.firstBackoffMs - 1
  const during = await lookUp40()
  t.equal(host.requests(), 1, 'none during the back-off')
  t.ok(during.every((error) => error instanceof KeySetUnavailable && error.retryAfterMs === 1), 'with what is left of it')

  const backoffs: number[] = []
  for (let wait = 1; backoffs.length < 6; wait = backoffs[backoffs.length - 1]) {
    clock.now += wait
    const errors = await lookUp40()
    t.equal(host.requests(), backoffs.length + 2, 'one new fetch once the back-off has passed')
    backoffs.push((errors[0] as KeySetUnavailable).retryAfterMs)
  }
  t.same(backoffs, [2_000, 4_000, 8_000, 16_000, 30_000, 30_000], 'doubling, up to 30 s')
  t.equal(reported.length, host.requests())

  failing = false
  clock.now += KEY_FETCH_POLICY.maxBackoffMs
  t.equal((await keyFor(keys, host.url, 'k') as CryptoKey).type, 'public', 'the host is back: its keys are used')
  failing = true
  clock.now += KEY_FETCH_POLICY.maxAgeMs
  t.equal((await failure(keyFor(keys, host.url, 'k')) as KeySetUnavailable).retryAfterMs, KEY_FETCH_POLICY.firstBackoffMs, 'a success resets the back-off')
})

t.test('an unknown kid fetches the set again at most once per cooldown, once for concurrent lookups; the set expires', async (t) => {
  let served = [await publicJwk('k1')]
  const host = await startKeyHost(t, (_request, response) => { response.end(JSON.stringify({ keys: served })) })
  const clock = { now: 1_000_000 }
  const keys = new AssertionKeys({ now: () => clock.now })

  await keyFor(keys, host.url, 'k1')
  t.type(await failure(keyFor(keys, host.url, 'k2')), joseErrors.JWKSNoMatchingKey)
  t.equal(host.requests(), 1, 'within the cooldown: no fetch')

  clock.now += KEY_FETCH_POLICY.refetchCooldownMs
  const unknown = await Promise.all(Array.from({ length: 40 }, async () => await failure(keyFor(keys, host.url, 'k2'))))
  t.ok(unknown.every((error) => error instanceof joseErrors.JWKSNoMatchingKey))
  t.equal(host.requests(), 2, 'after it: one fetch for 40 lookups')

  served = [await publicJwk('k2')]
  clock.now += KEY_FETCH_POLICY.refetchCooldownMs
  await keyFor(keys, host.url, 'k2')
  t.equal(host.requests(), 3, 'a rotated-in key is found')
  await keyFor(keys, host.url, 'k2')
  clock.now += KEY_FETCH_POLICY.maxAgeMs
  await keyFor(keys, host.url, 'k2')
  t.equal(host.requests(), 4, 'an expired set is fetched again')
})
