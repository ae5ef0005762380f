import { randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import type { Client } from '../../src/clients/client.js'
import { STORE_MODES } from './store-modes.js'

const LIMIT = { max: 2, windowMs: 1000 }

function newClient (clientId: string): Client {
  return { clientId, scopes: ['orders:read'], audiences: ['https://orders.internal'], secrets: [{ digest: 'digest', createdAt: 1000 }], createdAt: 1000, updatedAt: 1000 }
}

let nextIp = 1
/** A client IP never used before in this file. */
const freshIp = () => `192.0.2.${nextIp++}`

// The token endpoint's store, on every mode: this process, and Redis on each topology.
for (const [mode, emptyStores] of Object.entries(STORE_MODES)) {
  t.test(`${mode} token endpoint`, async (t) => {
    t.test('looks the client up beside the IP\'s failure window, counting nothing', async (t) => {
      const { durable: { clients }, transient: { tokenEndpoint } } = (await emptyStores(t)).stores
      await clients.create(newClient('billing'))
      const ip = freshIp()
      for (let i = 0; i < 3; i++) t.same(await tokenEndpoint.lookUpClient('billing', ip, LIMIT), { client: newClient('billing'), failures: { waitMs: 0 } })
      t.same(await tokenEndpoint.lookUpClient('nobody', ip, LIMIT), { client: undefined, failures: { waitMs: 0 } })
    })

    t.test('sees a client\'s changes and its removal at once', async (t) => {
      const { durable: { clients }, transient: { tokenEndpoint } } = (await emptyStores(t)).stores
      await clients.create(newClient('billing'))
      t.same((await tokenEndpoint.lookUpClient('billing', freshIp(), LIMIT)).client?.scopes, ['orders:read'])
      await clients.update('billing', (client) => ({ ...client, scopes: ['orders:write'] }))
      t.same((await tokenEndpoint.lookUpClient('billing', freshIp(), LIMIT)).client?.scopes, ['orders:write'])
      await clients.remove('billing')
      t.equal((await tokenEndpoint.lookUpClient('billing', freshIp(), LIMIT)).client, undefined)
    })

    t.test('failures count per IP: past the limit the IP waits until its oldest failure leaves the window', async (t) => {
      const { tokenEndpoint } = (await emptyStores(t)).stores.transient
      const [attacker, other] = [freshIp(), freshIp()]
      await tokenEndpoint.recordFailure(attacker, LIMIT)
      t.equal((await tokenEndpoint.lookUpClient('billing', attacker, LIMIT)).failures.waitMs, 0, 'under the limit')
      const oldestLeavesAt = Date.now() + LIMIT.windowMs
      await tokenEndpoint.recordFailure(attacker, LIMIT)
      const { waitMs } = (await tokenEndpoint.lookUpClient('billing', attacker, LIMIT)).failures
      t.ok(waitMs > 0 && waitMs <= LIMIT.windowMs, `waits ${waitMs} ms`)
      t.equal((await tokenEndpoint.lookUpClient('billing', other, LIMIT)).failures.waitMs, 0, 'another IP does not')
      await sleep(oldestLeavesAt - Date.now() + 20)
      t.equal((await tokenEndpoint.lookUpClient('billing', attacker, LIMIT)).failures.waitMs, 0, 'the oldest failure has left the window')
    })

    t.test('grants count per client up to the limit; one over it is refused and not counted', async (t) => {
      const { tokenEndpoint } = (await emptyStores(t)).stores.transient
      const firstAt = Date.now()
      t.same([await tokenEndpoint.admitGrant('chatty', LIMIT), await tokenEndpoint.admitGrant('chatty', LIMIT)], [{ waitMs: 0 }, { waitMs: 0 }])
      const refused = await tokenEndpoint.admitGrant('chatty', LIMIT)
      t.ok(refused.waitMs > 0 && refused.waitMs <= LIMIT.windowMs, `waits ${refused.waitMs} ms`)
      t.same(await tokenEndpoint.admitGrant('quiet', LIMIT), { waitMs: 0 }, 'another client is unaffected')
      await sleep(firstAt + LIMIT.windowMs - Date.now() + 20)
      t.same(await tokenEndpoint.admitGrant('chatty', LIMIT), { waitMs: 0 }, 'once the first grants left the window, the refused ones having counted for nothing')
    })

    t.test('an assertion id is claimed once per client, until it expires', async (t) => {
      const { tokenEndpoint } = (await emptyStores(t)).stores.transient
      const jti = randomUUID()
      t.equal(await tokenEndpoint.claimAssertionId('reports', jti, Date.now() + 60_000), true)
      t.equal(await tokenEndpoint.claimAssertionId('reports', jti, Date.now() + 60_000), false, 'a replay is refused')
      t.equal(await tokenEndpoint.claimAssertionId('billing', jti, Date.now() + 60_000), true, 'another client\'s assertions are its own')
      const shortLived = randomUUID()
      const expiresAt = Date.now() + 300
      t.equal(await tokenEndpoint.claimAssertionId('reports', shortLived, expiresAt), true)
      await sleep(expiresAt - Date.now() + 20)
      t.equal(await tokenEndpoint.claimAssertionId('reports', shortLived, Date.now() + 60_000), true, 'an expired entry is gone')
    })
  })
}
