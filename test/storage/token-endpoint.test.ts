import { randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import type { Client } from '../../src/clients/client.js'
import type { TokenEndpointStore } from '../../src/oauth/token-endpoint-store.js'
import { STORE_MODES } from './store-modes.js'

const LIMIT = { max: 2, windowMs: 1000 }
const FAILURES = { ...LIMIT, inFlightMs: 500 }

function newClient (clientId: string): Client {
  return { clientId, scopes: ['orders:read'], audiences: ['https://orders.internal'], secrets: [{ digest: 'digest', createdAt: 1000 }], createdAt: 1000, updatedAt: 1000 }
}

let nextAddress = 1
/** A client address never used before in this file. */
const freshAddress = () => `192.0.2.${nextAddress++}`

// The token endpoint's store, on every mode: this process, and Redis on each topology.
for (const [mode, emptyStores] of Object.entries(STORE_MODES)) {
  t.test(`${mode} token endpoint`, async (t) => {
    t.test('looks the client up beside admitting the attempt from the address', async (t) => {
      const { durable: { clients }, transient: { tokenEndpoint } } = (await emptyStores(t)).stores
      await clients.create(newClient('billing'))
      const address = freshAddress()
      t.same(await tokenEndpoint.lookUpClient('billing', address, randomUUID(), FAILURES), { client: newClient('billing'), admission: { outcome: 'admitted' } })
      t.same(await tokenEndpoint.lookUpClient('nobody', address, randomUUID(), FAILURES), { client: undefined, admission: { outcome: 'admitted' } })
      const busy = await tokenEndpoint.lookUpClient('billing', address, randomUUID(), FAILURES)
      t.same(busy, { client: newClient('billing'), admission: { outcome: 'busy' } }, 'two in flight fill a limit of two; the client is looked up all the same')
    })

    t.test('sees a client\'s changes and its removal at once', async (t) => {
      const { durable: { clients }, transient: { tokenEndpoint } } = (await emptyStores(t)).stores
      await clients.create(newClient('billing'))
      t.same((await tokenEndpoint.lookUpClient('billing', freshAddress(), randomUUID(), FAILURES)).client?.scopes, ['orders:read'])
      await clients.update('billing', (client) => ({ ...client, scopes: ['orders:write'] }))
      t.same((await tokenEndpoint.lookUpClient('billing', freshAddress(), randomUUID(), FAILURES)).client?.scopes, ['orders:write'])
      await clients.remove('billing')
      t.equal((await tokenEndpoint.lookUpClient('billing', freshAddress(), randomUUID(), FAILURES)).client, undefined)
    })

    /** An attempt from the address that ends at once: failed or not. */
    const attempt = async (tokenEndpoint: TokenEndpointStore, address: string, failed: boolean) => {
      const attemptId = randomUUID()
      const { admission } = await tokenEndpoint.lookUpClient('billing', address, attemptId, FAILURES)
      if (admission.outcome === 'admitted') await tokenEndpoint.endAttempt(address, attemptId, failed, FAILURES)
      return admission
    }

    t.test('failures count per address: past the limit the address waits until its oldest failure leaves the window', async (t) => {
      const { tokenEndpoint } = (await emptyStores(t)).stores.transient
      const [attacker, other] = [freshAddress(), freshAddress()]
      const oldestLeavesAt = Date.now() + FAILURES.windowMs
      t.same([await attempt(tokenEndpoint, attacker, true), await attempt(tokenEndpoint, attacker, true)], [{ outcome: 'admitted' }, { outcome: 'admitted' }])
      const refused = await attempt(tokenEndpoint, attacker, false)
      t.equal(refused.outcome, 'wait')
      const { waitMs } = refused as { waitMs: number }
      t.ok(waitMs > 0 && waitMs <= FAILURES.windowMs, `waits ${waitMs} ms`)
      t.same(await attempt(tokenEndpoint, other, false), { outcome: 'admitted' }, 'another address does not')
      await sleep(oldestLeavesAt - Date.now() + 20)
      t.same(await attempt(tokenEndpoint, attacker, false), { outcome: 'admitted' }, 'the oldest failure has left the window')
    })

    t.test('an attempt that does not fail leaves nothing counted', async (t) => {
      const { tokenEndpoint } = (await emptyStores(t)).stores.transient
      const address = freshAddress()
      for (let i = 0; i < 5; i++) t.same(await attempt(tokenEndpoint, address, false), { outcome: 'admitted' })
      t.same([await attempt(tokenEndpoint, address, true), await attempt(tokenEndpoint, address, true)], [{ outcome: 'admitted' }, { outcome: 'admitted' }], 'the failures still have the whole limit')
    })

    t.test('attempts in flight count: concurrent ones from one address get only the limit admitted, the rest are busy', async (t) => {
      const { tokenEndpoint } = (await emptyStores(t)).stores.transient
      const address = freshAddress()
      const ids = Array.from({ length: 10 }, () => randomUUID())
      const admissions = await Promise.all(ids.map(async (id) => (await tokenEndpoint.lookUpClient('billing', address, id, FAILURES)).admission.outcome))
      t.same([...admissions].sort(), ['admitted', 'admitted', ...Array(8).fill('busy')])
      const admitted = ids.filter((_, i) => admissions[i] === 'admitted')
      await tokenEndpoint.endAttempt(address, admitted[0], false, FAILURES)
      t.same(await attempt(tokenEndpoint, address, true), { outcome: 'admitted' }, 'an ended attempt makes room')
      await tokenEndpoint.endAttempt(address, admitted[1], true, FAILURES)
      t.equal((await attempt(tokenEndpoint, address, false)).outcome, 'wait', 'two failures: the address waits')
    })

    t.test('an attempt that never ends stops counting as in flight after inFlightMs', async (t) => {
      const { tokenEndpoint } = (await emptyStores(t)).stores.transient
      const address = freshAddress()
      const staleAt = Date.now() + FAILURES.inFlightMs
      await tokenEndpoint.lookUpClient('billing', address, randomUUID(), FAILURES)
      await tokenEndpoint.lookUpClient('billing', address, randomUUID(), FAILURES)
      t.same(await attempt(tokenEndpoint, address, false), { outcome: 'busy' })
      await sleep(staleAt - Date.now() + 20)
      t.same(await attempt(tokenEndpoint, address, false), { outcome: 'admitted' })
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
