import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { link, mkdir, rename, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { RECHECK_MS } from '../../../src/storage/files/data-dir-watch.ts'
import { FileUserRepository } from '../../../src/storage/files/users.ts'
import type { User } from '../../../src/users/repository.ts'
import { tempDir } from '../../helper.ts'

const CLOCK_SLACK_MS = 2

function usersFile (...usernames: string[]): string {
  const users: User[] = usernames.map((username) => ({ username, passwordHash: 'hash', createdAt: 1000, updatedAt: 2000 }))
  return JSON.stringify({ users }) + '\n'
}

/** Reads until `seen`, and resolves to when the read that saw it began; gives up past the bound, resolving to undefined. */
async function firstSeen (since: number, read: () => Promise<boolean>): Promise<number | undefined> {
  while (true) {
    const startedAt = Date.now()
    if (await read()) return startedAt
    if (startedAt - since > RECHECK_MS + CLOCK_SLACK_MS) return undefined
    await sleep(5)
  }
}

// Another process replacing the file as the CLI does (a new file renamed into place), once told to.
const WRITER = `
const { renameSync, writeFileSync } = require('node:fs')
process.stdout.write('ready\\n')
process.stdin.once('data', () => {
  writeFileSync(process.argv[1] + '.new', process.argv[2])
  renameSync(process.argv[1] + '.new', process.argv[1])
  process.stdout.write('written\\n')
})
`

t.test('a file another process replaces is seen when the watch reports it, before the recheck would have', async (t) => {
  const dataDir = await tempDir(t)
  const file = path.join(dataDir, 'users.json')
  await writeFile(file, usersFile('alice'))
  // On a busy machine the writer may answer too late to tell the watch from the recheck: then try again.
  for (let attempt = 1; ; attempt++) {
    const writer = spawn(process.execPath, ['-e', WRITER, file, usersFile('alice', `bob${attempt}`)], { stdio: ['pipe', 'pipe', 'inherit'] })
    writer.stdout.setEncoding('utf8')
    const lines = writer.stdout[Symbol.asyncIterator]()
    t.equal((await lines.next()).value, 'ready\n')
    // A repository that has just read the file: without the watch it would answer from memory until lookedAt + RECHECK_MS.
    const users = new FileUserRepository(dataDir)
    const lookedAt = Date.now()
    t.ok(await users.find('alice'))
    writer.stdin.end('go\n')
    t.equal((await lines.next()).value, 'written\n')
    await once(writer, 'exit')
    const seenAt = await firstSeen(lookedAt, async () => await users.find(`bob${attempt}`) !== undefined)
    t.ok(seenAt !== undefined, 'seen within the bound')
    if (seenAt! < lookedAt + RECHECK_MS || attempt === 3) {
      t.ok(seenAt! < lookedAt + RECHECK_MS, `seen ${seenAt! - lookedAt} ms after the last look, by the watch`)
      return
    }
  }
})

t.test('a change the watch does not see is seen within the bound all the same', async (t) => {
  // Written through a hard link in another directory: the same file, but no event in DATA_DIR.
  const dataDir = await tempDir(t)
  const elsewhere = path.join(await tempDir(t), 'users.json')
  await writeFile(elsewhere, usersFile('alice'))
  await link(elsewhere, path.join(dataDir, 'users.json'))
  const users = new FileUserRepository(dataDir)
  t.same(await users.list(), ['alice'])
  const writtenAt = Date.now()
  await writeFile(elsewhere, usersFile('alice', 'bob'))
  const seenAt = await firstSeen(writtenAt, async () => await users.find('bob') !== undefined)
  t.ok(seenAt !== undefined, `seen by a read ${seenAt! - writtenAt} ms after the write: no read begun more than ${RECHECK_MS} ms after it missed it`)
})

t.test('a DATA_DIR that does not exist yet reads as empty, and its files are read once it is made', async (t) => {
  const dataDir = path.join(await tempDir(t), 'data')
  const users = new FileUserRepository(dataDir)
  t.same(await users.list(), [])
  await mkdir(dataDir)
  await writeFile(path.join(dataDir, 'users.json'), usersFile('alice'))
  t.same(await users.list(), ['alice'], 'nothing was trusted while the directory could not be watched')
  const writtenAt = Date.now()
  await writeFile(path.join(dataDir, 'users.json.new'), usersFile('alice', 'bob'))
  await rename(path.join(dataDir, 'users.json.new'), path.join(dataDir, 'users.json'))
  t.ok(await firstSeen(writtenAt, async () => await users.find('bob') !== undefined) !== undefined, 'and a later change is seen')
})
