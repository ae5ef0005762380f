import t, { type Test } from 'tap'
import { ClientExistsError, type Client } from '../../src/clients/client.ts'
import { redisKeys } from '../../src/storage/redis/keys.ts'
import { STORE_MODES } from './store-modes.ts'

function newClient (clientId: string, scopes = ['orders:read']): Client {
  return { clientId, scopes, audiences: ['https://orders.internal'], secrets: [{ digest: `digest-of-${clientId}`, createdAt: 1000 }], createdAt: 1000, updatedAt: 1000 }
}

// The clients store's contract, on every mode: a file in DATA_DIR, and Redis on each topology.
for (const [mode, emptyStores] of Object.entries(STORE_MODES)) {
  const emptyRepository = async (t: Test) => (await emptyStores(t)).stores.durable.clients
  t.test(`${mode} clients`, async (t) => {
    t.test('finds a created client with every field, and no other', async (t) => {
      const clients = await emptyRepository(t)
      await clients.create(newClient('billing'))
      t.same(await clients.find('billing'), newClient('billing'))
      t.equal(await clients.find('reports'), undefined)
      t.equal(await clients.find('Billing'), undefined, 'client ids are exact')
    })

    t.test('refuses a second client with the same id, keeping the first', async (t) => {
      const clients = await emptyRepository(t)
      await clients.create(newClient('billing'))
      await t.rejects(clients.create(newClient('billing', ['admin'])), ClientExistsError)
      t.same((await clients.find('billing'))?.scopes, ['orders:read'])
      t.same((await clients.list()).map((client) => client.clientId), ['billing'])
    })

    t.test('update applies a change to the stored client and returns it; nothing for no client', async (t) => {
      const clients = await emptyRepository(t)
      await clients.create(newClient('billing'))
      const changed = await clients.update('billing', (client) => ({ ...client, scopes: [...client.scopes, 'orders:write'], updatedAt: 2000 }))
      t.same(changed?.scopes, ['orders:read', 'orders:write'])
      t.same(await clients.find('billing'), changed, 'what update returns is what is stored')
      t.equal(await clients.update('nobody', (client) => client), undefined)
      t.equal(await clients.find('nobody'), undefined, 'no client is made by updating one')
    })

    t.test('concurrent updates are all applied, none lost to another', async (t) => {
      const clients = await emptyRepository(t)
      await clients.create(newClient('billing', []))
      await Promise.all(Array.from({ length: 10 }, (_, i) => clients.update('billing', (client) => ({ ...client, scopes: [...client.scopes, `scope-${i}`] }))))
      t.equal((await clients.find('billing'))?.scopes.length, 10)
    })

    t.test('remove deletes the client, and the id can be taken again', async (t) => {
      const clients = await emptyRepository(t)
      await clients.create(newClient('billing'))
      await clients.create(newClient('reports'))
      t.equal(await clients.remove('billing'), true)
      t.equal(await clients.find('billing'), undefined)
      t.same((await clients.list()).map((client) => client.clientId), ['reports'])
      t.equal(await clients.remove('billing'), false)
      await clients.create(newClient('billing', ['again']))
      t.same((await clients.find('billing'))?.scopes, ['again'])
    })

    t.test('reconcile writes a batch: puts replace or create, removes delete, ids listed', async (t) => {
      const clients = await emptyRepository(t)
      await clients.create(newClient('billing'))
      await clients.create(newClient('stale'))
      const result = await clients.reconcile((stored) => {
        t.same(stored.map((client) => client.clientId), ['billing', 'stale'], 'the plan sees every stored client')
        return { writes: { put: [newClient('billing', ['changed']), newClient('orders')], remove: ['stale'] }, note: 'returned' }
      })
      t.equal(result.note, 'returned', 'what the plan returned')
      t.same((await clients.list()).map((client) => `${client.clientId}:${client.scopes.join(' ')}`), ['billing:changed', 'orders:orders:read'])
      t.equal(await clients.find('stale'), undefined)
    })

    t.test('concurrent reconciles run one at a time: the second plans against the result of the first', async (t) => {
      const clients = await emptyRepository(t)
      const seen: number[] = []
      await Promise.all(Array.from({ length: 3 }, () => clients.reconcile((stored) => {
        seen.push(stored.length)
        return { writes: { put: stored.length === 0 ? [newClient('billing')] : [], remove: [] } }
      })))
      t.same(seen, [0, 1, 1], 'only the first sees an empty store; the rest see its client')
    })

    t.test('reconcile of 10,000 clients takes seconds', async (t) => {
      const clients = await emptyRepository(t)
      const many = Array.from({ length: 10_000 }, (_, i) => newClient(`client-${String(i).padStart(5, '0')}`))
      const started = Date.now()
      await clients.reconcile(() => ({ writes: { put: many, remove: [] } }))
      const listed = await clients.list()
      t.equal(listed.length, 10_000)
      t.ok(Date.now() - started < 20_000, `written and listed in ${Date.now() - started} ms`)
      await clients.reconcile(() => ({ writes: { put: [], remove: many.map((client) => client.clientId) } }))
      t.same(await clients.list(), [])
    })

    t.test('lists every client sorted by id', async (t) => {
      const clients = await emptyRepository(t)
      t.same(await clients.list(), [])
      for (const clientId of ['reports', 'billing', 'shop', 'audit']) await clients.create(newClient(clientId))
      t.same(await clients.list(), ['audit', 'billing', 'reports', 'shop'].map((clientId) => newClient(clientId)))
    })

    t.test('pages in id order after a cursor, stable while clients come and go, the last page without a next', async (t) => {
      const clients = await emptyRepository(t)
      t.same(await clients.page(undefined, 10), { clients: [] })
      for (const clientId of ['reports', 'billing', 'shop', 'audit', 'orders']) await clients.create(newClient(clientId))
      const first = await clients.page(undefined, 2)
      t.same(first, { clients: [newClient('audit'), newClient('billing')], next: 'billing' })
      await clients.remove('billing')
      await clients.create(newClient('accounts'))
      const second = await clients.page(first.next, 2)
      t.same(second.clients.map((client) => client.clientId), ['orders', 'reports'], 'after the cursor, whether or not its client is still there; one added before it is not seen')
      const last = await clients.page(second.next, 2)
      t.same(last.clients.map((client) => client.clientId), ['shop'])
      t.equal(last.next, undefined)
    })

    t.test('Redis: the ids an earlier version kept in a plain set are moved into the sorted index', { skip: mode === 'embedded' && 'Redis only' }, async (t) => {
      const { stores, redis, keyPrefix } = await emptyStores(t)
      const keys = redisKeys(keyPrefix)
      for (const clientId of ['shop', 'billing']) {
        await redis!.set(keys.client(clientId).record, JSON.stringify(newClient(clientId)))
        await redis!.sadd(keys.clientIdsBefore, clientId)
      }
      t.same((await stores.durable.clients.page(undefined, 10)).clients.map((client) => client.clientId), ['billing', 'shop'])
      t.equal(await redis!.exists(keys.clientIdsBefore), 0, 'the plain set is gone')
      t.same(await redis!.zrange(keys.clientIds, 0, -1), ['billing', 'shop'])
    })

    t.test('pages through 10,000 clients, each once, in seconds', async (t) => {
      const clients = await emptyRepository(t)
      const many = Array.from({ length: 10_000 }, (_, i) => newClient(`client-${String(i).padStart(5, '0')}`))
      await clients.reconcile(() => ({ writes: { put: many, remove: [] } }))
      const started = Date.now()
      const seen: string[] = []
      for (let page = await clients.page(undefined, 500); ; page = await clients.page(page.next, 500)) {
        seen.push(...page.clients.map((client) => client.clientId))
        if (page.next === undefined) break
      }
      t.same(seen, many.map((client) => client.clientId))
      t.ok(Date.now() - started < 20_000, `paged in ${Date.now() - started} ms`)
    })
  })
}
