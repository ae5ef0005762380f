import t, { type Test } from 'tap'
import type { StoredSigningKey } from '../../src/tokens/key-lifecycle.ts'
import { STORE_MODES } from './store-modes.ts'

const key = (kid: string, activatesAt = 1000): StoredSigningKey => ({ kid, algorithm: 'EdDSA', sealedPrivateKey: `sealed-${kid}`, createdAt: 1000, activatesAt })

// The managed signing keys' store contract, on every mode: a file in DATA_DIR, and Redis on each topology.
for (const [mode, emptyStores] of Object.entries(STORE_MODES)) {
  const emptyStore = async (t: Test) => (await emptyStores(t)).stores.durable.signingKeys
  t.test(`${mode} signing keys`, async (t) => {
    t.test('holds what an update wrote, every field, and returns it', async (t) => {
      const store = await emptyStore(t)
      t.same(await store.list(), [])
      const written = [key('a'), { ...key('b', 2000), retiresAt: 3000, expiresAt: 4000 }]
      t.same(await store.update(() => written), written)
      t.same(await store.list(), written)
      t.same(await store.update((keys) => keys.filter((stored) => stored.kid !== 'a')), [written[1]], 'a key is removed')
      t.same(await store.list(), [written[1]])
    })

    t.test('a change that returns undefined writes nothing and returns what is stored', async (t) => {
      const store = await emptyStore(t)
      await store.update(() => [key('a')])
      t.same(await store.update(() => undefined), [key('a')])
      t.same(await store.list(), [key('a')])
    })

    t.test('concurrent updates are all applied, none lost to another', async (t) => {
      const store = await emptyStore(t)
      await Promise.all(Array.from({ length: 10 }, async (_, i) => await store.update((keys) => [...keys, key(`key-${i}`)])))
      t.same((await store.list()).map((stored) => stored.kid).sort(), Array.from({ length: 10 }, (_, i) => `key-${i}`).sort())
    })

    t.test('of writers that find the same key due, one adds it', async (t) => {
      const store = await emptyStore(t)
      const added = await Promise.all(Array.from({ length: 5 }, async (_, i) => await store.update((keys) => keys.length === 0 ? [key(`first-${i}`)] : undefined)))
      const [only] = await store.list()
      t.equal((await store.list()).length, 1)
      t.ok(added.every((keys) => keys.length === 1 && keys[0].kid === only.kid), 'every writer is answered with the one key stored')
    })
  })
}
