import t, { type Test } from 'tap'
import { UserExistsError, type User } from '../../src/users/repository.ts'
import { STORE_MODES } from './store-modes.ts'

// Timestamps from long ago, so a change stamped with Date.now() is visibly later.
function newUser (username: string, passwordHash = `hash-of-${username}`): User {
  return { username, passwordHash, createdAt: 1000, updatedAt: 2000 }
}

// The users store's contract, on every mode: a file in DATA_DIR, and Redis on each topology.
for (const [mode, emptyStores] of Object.entries(STORE_MODES)) {
  const emptyRepository = async (t: Test) => (await emptyStores(t)).stores.durable.users
  t.test(`${mode} users`, async (t) => {
    t.test('finds a created user with every field, and nobody else', async (t) => {
      const users = await emptyRepository(t)
      await users.create(newUser('john.doe'))
      t.same(await users.find('john.doe'), newUser('john.doe'))
      t.equal(await users.find('jane.doe'), undefined)
    })

    t.test('looks usernames up case-insensitively after NFKC', async (t) => {
      const users = await emptyRepository(t)
      await users.create(newUser('john.doe'))
      await users.create(newUser('john'))
      t.equal((await users.find('John.Doe'))?.username, 'john.doe')
      t.equal((await users.find('ＪＯＨＮ.ＤＯＥ'))?.username, 'john.doe')
      t.equal((await users.find('ｊｏｈｎ'))?.username, 'john')
    })

    t.test('stores the canonical (NFKC) username, keeping its case', async (t) => {
      const users = await emptyRepository(t)
      await users.create(newUser('Ｊａｎｅ'))
      t.equal((await users.find('jane'))?.username, 'Jane')
      t.same(await users.list(), ['Jane'])
    })

    t.test('refuses a second user with the same username in any case or width', async (t) => {
      const users = await emptyRepository(t)
      await users.create(newUser('john.doe', 'first-hash'))
      await t.rejects(users.create(newUser('john.doe', 'second-hash')), UserExistsError)
      await t.rejects(users.create(newUser('JOHN.DOE', 'second-hash')), UserExistsError)
      await t.rejects(users.create(newUser('ｊｏｈｎ.ｄｏｅ', 'second-hash')), UserExistsError)
      t.equal((await users.find('john.doe'))?.passwordHash, 'first-hash')
      t.same(await users.list(), ['john.doe'])
    })

    t.test('replacePasswordHash replaces only while the stored hash is the expected one', async (t) => {
      const users = await emptyRepository(t)
      await users.create(newUser('john.doe', 'old-hash'))

      t.equal(await users.replacePasswordHash('john.doe', 'some-other-hash', 'rehash'), false)
      t.same(await users.find('john.doe'), newUser('john.doe', 'old-hash'))

      t.equal(await users.replacePasswordHash('John.Doe', 'old-hash', 'rehash'), true)
      const replaced = await users.find('john.doe')
      t.equal(replaced?.passwordHash, 'rehash')
      t.equal(replaced?.createdAt, 1000)
      t.ok((replaced?.updatedAt ?? 0) > 2000, 'updatedAt moves on')

      t.equal(await users.replacePasswordHash('nobody', '', 'rehash'), false)
      t.equal(await users.find('nobody'), undefined)
    })

    t.test('setPasswordHash sets the hash of an existing user only', async (t) => {
      const users = await emptyRepository(t)
      await users.create(newUser('john.doe', 'old-hash'))
      t.equal(await users.setPasswordHash('JOHN.DOE', 'new-hash'), true)
      const changed = await users.find('john.doe')
      t.equal(changed?.passwordHash, 'new-hash')
      t.ok((changed?.updatedAt ?? 0) > 2000, 'updatedAt moves on')

      t.equal(await users.setPasswordHash('nobody', 'new-hash'), false)
      t.equal(await users.find('nobody'), undefined)
      t.same(await users.list(), ['john.doe'])
    })

    t.test('a password change and disabling end earlier tokens; enabling lets the user in again', async (t) => {
      const users = await emptyRepository(t)
      await users.create(newUser('john.doe', 'old-hash'))
      t.equal((await users.find('john.doe'))?.tokensValidAfter, undefined)
      const beforeChange = Date.now()
      await users.setPasswordHash('john.doe', 'new-hash')
      t.ok((await users.find('john.doe'))!.tokensValidAfter! >= beforeChange, 'a password change ends earlier tokens')

      t.equal(await users.setDisabled('John.Doe', true), true)
      const disabled = await users.find('john.doe')
      t.equal(disabled?.disabled, true)
      t.ok(disabled!.tokensValidAfter! >= disabled!.updatedAt, 'disabling ends earlier tokens')
      t.equal(await users.setDisabled('john.doe', false), true)
      const enabled = await users.find('john.doe')
      t.notOk(enabled?.disabled, 'enabled again')
      t.equal(enabled?.tokensValidAfter, disabled?.tokensValidAfter, 'earlier tokens stay refused')
      t.equal(enabled?.passwordHash, 'new-hash')

      t.equal(await users.setDisabled('nobody', true), false)
      t.equal(await users.find('nobody'), undefined, 'no user is made by disabling one')
    })

    t.test('remove deletes the user, and the name can be taken again', async (t) => {
      const users = await emptyRepository(t)
      await users.create(newUser('john.doe'))
      await users.create(newUser('jane.doe'))
      t.equal(await users.remove('John.Doe'), true)
      t.equal(await users.find('john.doe'), undefined)
      t.same(await users.list(), ['jane.doe'])
      t.equal(await users.remove('john.doe'), false)
      await users.create(newUser('john.doe', 'again'))
      t.equal((await users.find('john.doe'))?.passwordHash, 'again')
    })

    t.test('lists canonical usernames sorted', async (t) => {
      const users = await emptyRepository(t)
      t.same(await users.list(), [])
      for (const username of ['carol', 'alice', 'dave', 'bob']) await users.create(newUser(username))
      t.same(await users.list(), ['alice', 'bob', 'carol', 'dave'])
    })

    t.test('pages through the users in list order after a cursor, whole records, the last page without a next', async (t) => {
      const users = await emptyRepository(t)
      t.same(await users.page(undefined, 10), { users: [] })
      for (const username of ['carol', 'alice', 'erin', 'dave', 'bob']) await users.create(newUser(username))
      const first = await users.page(undefined, 2)
      t.same(first, { users: [newUser('alice'), newUser('bob')], next: 'bob' })
      const second = await users.page(first.next, 2)
      t.same(second.users.map((user) => user.username), ['carol', 'dave'])
      await users.remove('carol')
      t.same(await users.page(second.next, 2), { users: [newUser('erin')] }, 'a page after a cursor whose user is gone')
      t.same(await users.page('dave', 1), { users: [newUser('erin')] }, 'exactly the last: no next')
    })
  })
}
