import t from 'tap'
import type { Client } from '../../../src/clients/client.ts'
import { KEY_FETCH_POLICY } from '../../../src/oauth/assertion-keys.ts'
import { startKeyHost, streamKeySet, type Streamed } from '../../oauth/key-host.ts'
import { behaviourTopologies, redisModeOn } from '../../redis-topologies.ts'
import { addClient, listeningService, postForm } from './helper.ts'

// The attacker's side of a key host: anonymous token requests whose assertions name a kid the
// service has not seen, so that each would have it fetch the client's key set again.

const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer'
const MiB = 1024 * 1024

/** A well-formed assertion header naming an unknown kid, over a payload and signature of nothing. */
function junkAssertion (): string {
  const part = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url')
  return `${part({ alg: 'ES256', kid: `unknown-${crypto.randomUUID()}` })}.${part({ iss: 'reports', sub: 'reports' })}.${Buffer.from('junk').toString('base64url')}`
}

const junkGrant = async (issuer: string) => await postForm(`${issuer}/oauth2/token`, {
  grant_type: 'client_credentials',
  client_id: 'reports',
  client_assertion_type: JWT_BEARER,
  client_assertion: junkAssertion()
})

/** The two kinds of client whose keys are fetched: its own jwks_uri, or its workload issuer's. */
const KEY_SOURCES: Record<string, (url: string) => Partial<Client>> = {
  jwks_uri: (url) => ({ jwksUri: url }),
  'workload identity': (url) => ({ federated: { issuer: 'https://cluster.example', subject: 'system:serviceaccount:shop:reports', jwksUri: url } })
}

for (const [kind, keySource] of Object.entries(KEY_SOURCES)) {
  t.test(`${kind}: a key host serving a 250 MiB key set: the service stops reading early, drops the connection and answers 503`, async (t) => {
    let streamed: Promise<Streamed> | undefined
    const host = await startKeyHost(t, (_request, response) => { streamed = streamKeySet(response, 250 * MiB, { contentLength: true }) })
    const { app, issuer } = await listeningService(t)
    await addClient(app, { clientId: 'reports', ...keySource(host.url) })

    const response = await junkGrant(issuer)
    t.equal(response.status, 503)
    t.equal(response.body.error, 'temporarily_unavailable')
    t.ok(Number(response.headers.get('retry-after')) >= 1, `Retry-After ${response.headers.get('retry-after')}`)
    const { written, complete } = await streamed!
    t.notOk(complete, 'the host could not finish: the service closed the connection')
    // What the host wrote is the service's read plus the sockets' buffers on both sides.
    t.ok(written < 16 * MiB, `the host wrote ${(written / MiB).toFixed(1)} MiB of 250 before the connection closed`)
    t.equal((await fetch(`${issuer}/health/live`)).status, 200, 'the service is up')
  })
}

/** How many fetches a key host that keeps failing may get in `elapsedMs`: one, then one per back-off passed. */
function fetchesWithin (elapsedMs: number): number {
  let fetches = 1
  for (let at = 0, backoff = KEY_FETCH_POLICY.firstBackoffMs; at + backoff <= elapsedMs; backoff = Math.min(2 * backoff, KEY_FETCH_POLICY.maxBackoffMs)) {
    at += backoff
    fetches++
  }
  return fetches
}

// The per-IP failure limit is shared state: embedded, and Redis mode.
for (const mode of ['embedded', ...behaviourTopologies()] as const) {
  t.test(`${mode}: a key host answering 500: 40 concurrent token requests cost one fetch, 40 more in a row no more than the back-off allows, none counts as a failure`, async (t) => {
    const host = await startKeyHost(t, (_request, response) => {
      response.statusCode = 500
      response.end()
    })
    const { app, issuer } = await listeningService(t, mode === 'embedded' ? {} : (await redisModeOn(mode)).env)
    await addClient(app, { clientId: 'reports', jwksUri: host.url })

    const started = Date.now()
    const concurrent = await Promise.all(Array.from({ length: 40 }, async () => await junkGrant(issuer)))
    t.equal(host.requests(), 1, 'one fetch for all 40')
    t.same(concurrent.map(({ status }) => status), Array(40).fill(503))
    t.same(new Set(concurrent.map(({ body }) => body.error)), new Set(['temporarily_unavailable']))
    t.ok(concurrent.every(({ headers }) => Number(headers.get('retry-after')) >= 1), 'each says when to retry')

    // Not failed authentications (CLIENT_AUTH_FAILURE_MAX is 20): the credentials were never checked.
    const sequential = []
    for (let i = 0; i < 40; i++) sequential.push((await junkGrant(issuer)).status)
    t.same(sequential, Array(40).fill(503), 'never 429')
    const elapsed = Date.now() - started
    t.ok(host.requests() <= fetchesWithin(elapsed), `${host.requests()} fetches in ${elapsed} ms (1 in the first ${KEY_FETCH_POLICY.firstBackoffMs} ms)`)
  })
}
