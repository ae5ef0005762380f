import { randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import type { Client } from '../../src/clients/client.ts'
import { STORE_MODES } from './store-modes.ts'

const LIMIT = { max: 2, windowMs: 1000 }

function newClient (clientId: string): Client {
  return { clientId, scopes: ['orders:read'], audiences: ['https://orders.internal'], secrets: [{ digest: 'digest', createdAt: 1000 }], createdAt: 1000, updatedAt: 1000 }
}

let nextAddress = 1
/** A client address never used before in this file. */
const freshAddress = () => `192.0.2.${nextAddress++}`

// The token endpoint's store, on every mode: this process, and Redis on each topology.
for (const [mode, emptyStores] of Object.entries(STORE_MODES)) {
  t.test(`${mode} token endpoint`, async (t) => {
    t.test('looks the client up beside a look at the address\'s failures', async (t) => {
      const { durable: { clients }, transient: { tokenEndpoint } } = (await emptyStores(t)).stores
      await clients.create(newClient('billing'))
      const address = freshAddress()
      t.same(await tokenEndpoint.lookUpClient('billing', address, LIMIT), { client: newClient('billing'), failures: { waitMs: 0 } })
      t.same(await tokenEndpoint.lookUpClient('nobody', address, LIMIT), { client: undefined, failures: { waitMs: 0 } })
      await tokenEndpoint.recordFailure(address, LIMIT)
      await tokenEndpoint.recordFailure(address, LIMIT)
      const full = await tokenEndpoint.lookUpClient('billing', address, LIMIT)
      t.same(full.client, newClient('billing'), 'the client is looked up all the same')
      t.ok(full.failures.waitMs > 0 && full.failures.waitMs <= LIMIT.windowMs, `two failures fill a limit of two: waits ${full.failures.waitMs} ms`)
    })

    t.test('sees a client\'s changes and its removal at once', async (t) => {
      const { durable: { clients }, transient: { tokenEndpoint } } = (await emptyStores(t)).stores
      await clients.create(newClient('billing'))
      t.same((await tokenEndpoint.lookUpClient('billing', freshAddress(), LIMIT)).client?.scopes, ['orders:read'])
      await clients.update('billing', (client) => ({ ...client, scopes: ['orders:write'] }))
      t.same((await tokenEndpoint.lookUpClient('billing', freshAddress(), LIMIT)).client?.scopes, ['orders:write'])
      await clients.remove('billing')
      t.equal((await tokenEndpoint.lookUpClient('billing', freshAddress(), LIMIT)).client, undefined)
    })

    t.test('failures count per address: past the limit the address waits until its oldest failure leaves the window', async (t) => {
      const { tokenEndpoint } = (await emptyStores(t)).stores.transient
      const [attacker, other] = [freshAddress(), freshAddress()]
      t.same(await tokenEndpoint.peekFailures(attacker, LIMIT), { waitMs: 0 })
      t.same([await tokenEndpoint.recordFailure(attacker, LIMIT), await tokenEndpoint.recordFailure(attacker, LIMIT)], [{ waitMs: 0 }, { waitMs: 0 }])
      const bothLeaveBy = Date.now() + LIMIT.windowMs
      const refused = await tokenEndpoint.recordFailure(attacker, LIMIT)
      t.ok(refused.waitMs > 0 && refused.waitMs <= LIMIT.windowMs, `a third is refused: waits ${refused.waitMs} ms`)
      const peeked = await tokenEndpoint.peekFailures(attacker, LIMIT)
      t.ok(peeked.waitMs > 0 && peeked.waitMs <= LIMIT.windowMs, 'and the window is seen full')
      t.same(await tokenEndpoint.peekFailures(other, LIMIT), { waitMs: 0 }, 'another address is not')
      await sleep(bothLeaveBy - Date.now() + 20)
      t.same(await tokenEndpoint.peekFailures(attacker, LIMIT), { waitMs: 0 }, 'the oldest failures have left the window, the refused one having counted for nothing')
      t.same(await tokenEndpoint.recordFailure(attacker, LIMIT), { waitMs: 0 })
    })

    t.test('concurrent failures from one address: the limit\'s fill is recorded, the rest refused, and nothing else is kept', async (t) => {
      const { tokenEndpoint } = (await emptyStores(t)).stores.transient
      const address = freshAddress()
      const failures = await Promise.all(Array.from({ length: 10 }, async () => (await tokenEndpoint.recordFailure(address, LIMIT)).waitMs > 0 ? 'refused' : 'recorded'))
      t.same([...failures].sort(), ['recorded', 'recorded', ...Array(8).fill('refused')])
      const peeks = await Promise.all(Array.from({ length: 10 }, () => tokenEndpoint.peekFailures(freshAddress(), LIMIT)))
      t.same(peeks, Array(10).fill({ waitMs: 0 }), 'looking records nothing, however many look at once')
    })

    t.test('grants count per client up to the limit; one over it is refused and not counted', async (t) => {
      const { tokenEndpoint } = (await emptyStores(t)).stores.transient
      const address = freshAddress()
      const grant = async (clientId: string) => await tokenEndpoint.admitGrant(clientId, LIMIT, address, LIMIT)
      const counted = [await grant('chatty'), await grant('chatty')]
      // Both counted grants were recorded by now: the window has let them go by this instant plus its length.
      const countedBy = Date.now()
      t.same(counted, [{ failures: { waitMs: 0 }, grant: { waitMs: 0 } }, { failures: { waitMs: 0 }, grant: { waitMs: 0 } }])
      const refused = await grant('chatty')
      t.ok(refused.grant.waitMs > 0 && refused.grant.waitMs <= LIMIT.windowMs, `waits ${refused.grant.waitMs} ms`)
      t.same(await grant('quiet'), { failures: { waitMs: 0 }, grant: { waitMs: 0 } }, 'another client is unaffected')
      await sleep(countedBy + LIMIT.windowMs - Date.now() + 20)
      t.same(await grant('chatty'), { failures: { waitMs: 0 }, grant: { waitMs: 0 } }, 'once the first grants left the window, the refused ones having counted for nothing')
    })

    t.test('a grant to an address past its failure limit is refused and not counted', async (t) => {
      const { tokenEndpoint } = (await emptyStores(t)).stores.transient
      const [attacker, other] = [freshAddress(), freshAddress()]
      await tokenEndpoint.recordFailure(attacker, LIMIT)
      await tokenEndpoint.recordFailure(attacker, LIMIT)
      for (let i = 0; i < 3; i++) {
        const { failures, grant } = await tokenEndpoint.admitGrant('billing', LIMIT, attacker, LIMIT)
        t.ok(failures.waitMs > 0 && grant.waitMs === 0, 'the failures refuse it')
      }
      const grants = [await tokenEndpoint.admitGrant('billing', LIMIT, other, LIMIT), await tokenEndpoint.admitGrant('billing', LIMIT, other, LIMIT)]
      t.same(grants.map(({ grant }) => grant), [{ waitMs: 0 }, { waitMs: 0 }], 'the client\'s budget is whole for another address')
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
