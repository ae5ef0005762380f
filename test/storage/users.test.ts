import { randomUUID } from 'node:crypto'
import t, { type Test } from 'tap'
import { openRedisConnection } from '../../src/storage/redis/connection.js'
import { FileUserRepository } from '../../src/storage/files/users.js'
import { redisKeys } from '../../src/storage/redis/keys.js'
import { RedisUserRepository } from '../../src/storage/redis/users.js'
import { UserExistsError, type User, type UserRepository } from '../../src/users/repository.js'
import { tempDir } from '../helper.js'
import { startRedisServer } from '../redis-server.js'

const redisServer = await startRedisServer()
const redis = await openRedisConnection(redisServer.url)
t.teardown(async () => {
  redis.disconnect()
  await redisServer.stop()
})

// Timestamps from long ago, so a change stamped with Date.now() is visibly later.
function newUser (username: string, passwordHash = `hash-of-${username}`): User {
  return { username, passwordHash, createdAt: 1000, updatedAt: 2000 }
}

/** Each call gives an empty repository. */
const implementations: Record<string, (t: Test) => Promise<UserRepository>> = {
  redis: async () => new RedisUserRepository(redis, redisKeys(`test:${randomUUID()}:`)),
  file: async (t) => new FileUserRepository(await tempDir(t))
}

for (const [name, emptyRepository] of Object.entries(implementations)) {
  t.test(`${name} repository`, async (t) => {
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
  })
}
