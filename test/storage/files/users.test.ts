import { mkdir, readdir, readFile, stat, utimes, writeFile, rm } from 'node:fs/promises'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { FileUserRepository } from '../../../src/storage/files/users.ts'
import type { User } from '../../../src/users/repository.ts'
import { tempDir } from '../../helper.ts'

const HASH = '$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g'

function newUser (username: string, passwordHash = HASH): User {
  return { username, passwordHash, createdAt: 1000, updatedAt: 2000 }
}

t.test('users outlive the instance that stored them', async (t) => {
  const dataDir = await tempDir(t)
  await new FileUserRepository(dataDir).create(newUser('alice'))
  t.same(await new FileUserRepository(dataDir).find('alice'), newUser('alice'))
})

t.test('an instance sees what another instance (another process) wrote after its own read', async (t) => {
  const dataDir = await tempDir(t)
  const server = new FileUserRepository(dataDir)
  const cli = new FileUserRepository(dataDir)
  await server.create(newUser('alice', 'a'.repeat(HASH.length)))
  t.same(await server.list(), ['alice'])

  await cli.create(newUser('bob'))
  t.same(await server.list(), ['alice', 'bob'])

  // Same length, so the file keeps its size: the change must still be noticed.
  t.equal(await cli.setPasswordHash('alice', 'b'.repeat(HASH.length)), true)
  t.equal((await server.find('alice'))?.passwordHash, 'b'.repeat(HASH.length))

  t.equal(await cli.remove('bob'), true)
  t.equal(await server.find('bob'), undefined)
})

t.test('writes from two instances at once are all kept', async (t) => {
  const dataDir = await tempDir(t)
  const first = new FileUserRepository(dataDir)
  const second = new FileUserRepository(dataDir)
  const usernames = Array.from({ length: 20 }, (_, i) => `user${String(i).padStart(2, '0')}`)
  await Promise.all(usernames.map((username, i) => (i % 2 === 0 ? first : second).create(newUser(username))))
  t.same(await new FileUserRepository(dataDir).list(), usernames)
  t.same(await readdir(dataDir), ['users.json'], 'no lock or temporary file left behind')
})

t.test('the directory is private to the owner and users.json readable by the owner only', async (t) => {
  const dataDir = path.join(await tempDir(t), 'data')
  const users = new FileUserRepository(dataDir)
  await users.create(newUser('alice'))
  await users.setPasswordHash('alice', 'new-hash')
  t.equal((await stat(dataDir)).mode & 0o777, 0o700)
  t.equal((await stat(path.join(dataDir, 'users.json'))).mode & 0o777, 0o600)
})

t.test('a corrupt users.json is reported and never overwritten', async (t) => {
  for (const [problem, content] of Object.entries({
    'not JSON': `{"users":[{"username":"alice","passwordHash":"${HASH}"`,
    'not a list of users': `{"users":{"alice":{"passwordHash":"${HASH}"}}}`
  })) {
    t.test(problem, async (t) => {
      const dataDir = await tempDir(t)
      const file = path.join(dataDir, 'users.json')
      await writeFile(file, content)
      const users = new FileUserRepository(dataDir)

      const corrupt = { message: /Cannot read users from .*users\.json: it is corrupt and is left untouched/ }
      await t.rejects(users.find('alice'), corrupt)
      await t.rejects(users.list(), corrupt)
      await t.rejects(users.create(newUser('bob')), corrupt)
      await t.rejects(users.setPasswordHash('alice', 'new-hash'), corrupt)
      await t.rejects(users.remove('alice'), corrupt)

      t.equal(await readFile(file, 'utf8'), content, 'file left byte for byte')
      t.same(await readdir(dataDir), ['users.json'], 'lock released')
      const error = await users.find('alice').catch((error: Error) => error)
      t.notMatch((error as Error).message, HASH, 'the message quotes no stored hash')
    })
  }
})

t.test('a write waits for the lock held by another writer', async (t) => {
  const dataDir = await tempDir(t)
  // proper-lockfile's lock is a directory.
  const lockFile = path.join(dataDir, 'users.json.lock')
  await mkdir(lockFile)
  const released = sleep(200).then(() => rm(lockFile, { recursive: true }))
  const started = Date.now()
  await new FileUserRepository(dataDir).create(newUser('alice'))
  await released
  t.ok(Date.now() - started >= 200, 'waited for the release')
  t.same(await new FileUserRepository(dataDir).list(), ['alice'])
})

t.test('a lock left by a process that died is broken', async (t) => {
  const dataDir = await tempDir(t)
  const lockFile = path.join(dataDir, 'users.json.lock')
  await mkdir(lockFile)
  const minuteAgo = new Date(Date.now() - 60_000)
  await utimes(lockFile, minuteAgo, minuteAgo)
  await new FileUserRepository(dataDir).create(newUser('alice'))
  t.same(await new FileUserRepository(dataDir).list(), ['alice'])
})

t.test('a lock that stays held fails the write with a clear error, changing nothing', async (t) => {
  const dataDir = await tempDir(t)
  const users = new FileUserRepository(dataDir)
  await users.create(newUser('alice'))
  await mkdir(path.join(dataDir, 'users.json.lock'))
  await t.rejects(users.create(newUser('bob')), { message: /another process holds .*users\.json\.lock/ })
  t.same(await users.list(), ['alice'])
})

t.test('writers never both hold the lock: 20 concurrent creates through separate repositories all land', async (t) => {
  const dataDir = await tempDir(t)
  const names = Array.from({ length: 20 }, (_, i) => `user-${String(i).padStart(2, '0')}`)
  await Promise.all(names.map((name) => new FileUserRepository(dataDir).create(newUser(name))))
  t.same(await new FileUserRepository(dataDir).list(), names, 'no read-modify-write lost another\'s user')
  t.same(await readdir(dataDir), ['users.json'], 'lock released')
})
