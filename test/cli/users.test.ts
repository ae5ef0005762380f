import { spawn, spawnSync } from 'node:child_process'
import { once } from 'node:events'
import { symlink, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { PassThrough } from 'node:stream'
import t, { type Test } from 'tap'
import { runUsersCli } from '../../src/cli/users.ts'
import { loadConfig } from '../../src/config.ts'
import { openRedisConnection, redisTopology } from '../../src/storage/redis/connection.ts'
import { openStores } from '../../src/storage/stores.ts'
import { PasswordHasher } from '../../src/users/passwords.ts'
import type { UserRepository } from '../../src/users/repository.ts'
import { nodeArgs, tempDir } from '../helper.ts'
import { freePort } from '../redis-server.ts'
import { behaviourTopologies, redisModeOn } from '../redis-topologies.ts'

const PASSWORD = 'correct horse battery staple'
const NEW_PASSWORD = 'a different, longer passphrase'
// Cheap but real argon2id; the checks below verify with whatever parameters a hash carries.
const CHEAP_ARGON2 = { ARGON2_MEMORY_KIB: '8192', ARGON2_TIME_COST: '1' }
const verifier = new PasswordHasher({ memoryCost: 8192, timeCost: 1, parallelism: 1 })
const USAGE = /^Usage: npm run users -- <command>/

interface CliRun {
  code: number | null
  stdout: string
  stderr: string
}

/** Runs the real (compiled) CLI as its own process, with only the settings a test gives it and `stdin` piped in. */
async function runCli (settings: Record<string, string>, args: string[], stdin = ''): Promise<CliRun> {
  const child = spawn(process.execPath, [...nodeArgs('src/cli/users.ts'), ...args], {
    env: { ...CHEAP_ARGON2, ...settings }
  })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => { stdout += chunk })
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk })
  child.stdin.end(stdin)
  const [code] = await once(child, 'close') as [number | null]
  return { code, stdout, stderr }
}

/** The repository the server would open with these settings. */
async function repositoryFor (t: Test, settings: Record<string, string>): Promise<UserRepository> {
  const config = loadConfig(settings)
  if (redisTopology(config) === undefined) return openStores(config).durable.users
  const redis = await openRedisConnection(config)
  t.teardown(() => redis.disconnect())
  return openStores(config, redis).durable.users
}

interface Mode {
  /** The settings of an empty store. */
  emptyStore: (t: Test) => Promise<Record<string, string>>
  /** Settings under which the store cannot be used. */
  brokenStore: (t: Test) => Promise<Record<string, string>>
}

const modes: Record<string, Mode> = {
  embedded: {
    emptyStore: async (t) => ({ DATA_DIR: await tempDir(t) }),
    brokenStore: async (t) => {
      const dataDir = await tempDir(t)
      await writeFile(path.join(dataDir, 'users.json'), '{ not json')
      return { DATA_DIR: dataDir }
    }
  },
  ...Object.fromEntries(behaviourTopologies().map((topology) => [`redis (${topology})`, {
    emptyStore: async () => (await redisModeOn(topology)).env,
    brokenStore: async () => ({ REDIS_URL: `redis://127.0.0.1:${await freePort()}` })
  }]))
}

for (const [name, mode] of Object.entries(modes)) {
  t.test(`${name} mode`, async (t) => {
    t.test('add, list, passwd, remove: each stored as the service reads it', async (t) => {
      const settings = await mode.emptyStore(t)
      const users = await repositoryFor(t, settings)

      t.same(await runCli(settings, ['add', 'alice'], `${PASSWORD}\n`), { code: 0, stdout: 'Added user "alice"\n', stderr: '' })
      t.same(await runCli(settings, ['list']), { code: 0, stdout: 'alice\n', stderr: '' })
      const added = await users.find('alice')
      t.match(added?.passwordHash, /^\$argon2id\$v=19\$m=8192,t=1,p=1\$/, 'hashed with the configured parameters')
      t.equal((await verifier.verify(added?.passwordHash ?? '', PASSWORD)).valid, true, 'the piped password verifies')

      t.same(await runCli(settings, ['passwd', 'ALICE'], `${NEW_PASSWORD}\n`), { code: 0, stdout: 'Changed the password of "alice"\n', stderr: '' })
      const changed = await users.find('alice')
      t.equal((await verifier.verify(changed?.passwordHash ?? '', NEW_PASSWORD)).valid, true, 'the new password verifies')
      t.equal((await verifier.verify(changed?.passwordHash ?? '', PASSWORD)).valid, false, 'the old one no longer does')

      t.same(await runCli(settings, ['remove', 'alice']), { code: 0, stdout: 'Removed user "alice"\n', stderr: '' })
      t.same(await runCli(settings, ['list']), { code: 0, stdout: '', stderr: '' })
      t.equal(await users.find('alice'), undefined)
    })

    t.test('failures exit with code 1 and say why; a usage error exits with 2', async (t) => {
      const settings = await mode.emptyStore(t)
      const users = await repositoryFor(t, settings)
      t.equal((await runCli(settings, ['add', 'alice'], `${PASSWORD}\n`)).code, 0)
      const storedHash = (await users.find('alice'))?.passwordHash

      // Independent of each other, so run at once.
      const [weak, taken, unknownPasswd, unknownRemove, noPassword, usage] = await Promise.all([
        runCli(settings, ['add', 'bob'], 'too short\n'),
        runCli(settings, ['add', 'ALICE'], `${NEW_PASSWORD}\n`),
        runCli(settings, ['passwd', 'bob'], `${NEW_PASSWORD}\n`),
        runCli(settings, ['remove', 'bob']),
        runCli(settings, ['add', 'carol'], ''),
        runCli(settings, ['frobnicate'])
      ])
      t.same(weak, { code: 1, stdout: '', stderr: 'Password must be at least 15 characters\n' })
      t.same(taken, { code: 1, stdout: '', stderr: 'User "alice" already exists\n' })
      t.same(unknownPasswd, { code: 1, stdout: '', stderr: 'No such user "bob"\n' })
      t.same(unknownRemove, { code: 1, stdout: '', stderr: 'No such user "bob"\n' })
      t.same(noPassword, { code: 1, stdout: '', stderr: 'No password given\n' })
      t.equal(usage.code, 2)
      t.match(usage.stderr, /^Unknown command "frobnicate"\n\nUsage: npm run users -- <command>/, 'the unknown command is named first')

      t.same(await users.list(), ['alice'], 'nothing added')
      t.equal((await users.find('alice'))?.passwordHash, storedHash, 'the existing user untouched')
    })

    t.test('an unusable store fails with exit code 1 and the reason', async (t) => {
      const run = await runCli(await mode.brokenStore(t), ['list'])
      t.equal(run.code, 1)
      t.match(run.stderr, name.startsWith('redis') ? /^Cannot connect to Redis: .*ECONNREFUSED/ : /^Cannot read users from .*users\.json: it is corrupt/)
    })
  })
}

/** Streams for runUsersCli: `typed` waits on stdin, and what the command writes is collected. */
function streamIo (typed: string, { terminal }: { terminal: boolean }) {
  const stdin = Object.assign(new PassThrough(), { isTTY: terminal, setRawMode: () => stdin })
  const stdout = new PassThrough({ encoding: 'utf8' })
  const stderr = new PassThrough({ encoding: 'utf8' })
  const written = { stdout: '', stderr: '' }
  stdout.on('data', (chunk: string) => { written.stdout += chunk })
  stderr.on('data', (chunk: string) => { written.stderr += chunk })
  stdin.end(typed)
  return { stdin, stdout, stderr, written }
}

t.test('on a terminal the password is asked twice, without echo', async (t) => {
  const config = loadConfig({ DATA_DIR: await tempDir(t), ...CHEAP_ARGON2 })
  const io = streamIo(`${PASSWORD}\r${PASSWORD}\r`, { terminal: true })
  t.equal(await runUsersCli(['add', 'alice'], { ...io, config }), 0)
  t.equal(io.written.stderr, 'New password: \nRepeat the password: \n')
  t.equal(io.written.stdout, 'Added user "alice"\n')
  const stored = await openStores(config).durable.users.find('alice')
  t.equal((await verifier.verify(stored?.passwordHash ?? '', PASSWORD)).valid, true)
})

t.test('on a terminal two different answers fail and store nothing', async (t) => {
  const config = loadConfig({ DATA_DIR: await tempDir(t), ...CHEAP_ARGON2 })
  const io = streamIo(`${PASSWORD}\r${NEW_PASSWORD}\r`, { terminal: true })
  t.equal(await runUsersCli(['add', 'alice'], { ...io, config }), 1)
  t.equal(io.written.stderr, 'New password: \nRepeat the password: \nThe passwords do not match\n')
  t.same(await openStores(config).durable.users.list(), [])
})

t.test('on a terminal a weak password is refused before it is asked again', async (t) => {
  const config = loadConfig({ DATA_DIR: await tempDir(t), ...CHEAP_ARGON2 })
  const io = streamIo('too short\r', { terminal: true })
  t.equal(await runUsersCli(['add', 'alice'], { ...io, config }), 1)
  t.equal(io.written.stderr, 'New password: \nPassword must be at least 15 characters\n')
  t.same(await openStores(config).durable.users.list(), [])
})

t.test('Ctrl-C at a prompt exits with 130 and no message', async (t) => {
  const config = loadConfig({ DATA_DIR: await tempDir(t), ...CHEAP_ARGON2 })
  for (const typed of ['\x03', `${PASSWORD}\r\x03`]) {
    const io = streamIo(typed, { terminal: true })
    t.equal(await runUsersCli(['add', 'alice'], { ...io, config }), 130)
    t.match(io.written.stderr, /^(New password: \n|Repeat the password: \n)+$/, 'only the prompts')
  }
  t.same(await openStores(config).durable.users.list(), [])
})

const NO_SCRIPT = spawnSync('script', ['--version']).error !== undefined && 'script(1) from util-linux is not installed'
t.test('Ctrl-C on a real terminal (a pty through script(1)): exit code 130, nothing but the prompt', { skip: NO_SCRIPT }, async (t) => {
  const dataDir = await tempDir(t)
  const command = [process.execPath, ...nodeArgs('src/cli/users.ts'), 'add', 'alice'].map((word) => `'${word}'`).join(' ')
  const child = spawn('script', ['-qec', command, '/dev/null'], { env: { PATH: process.env.PATH ?? '', DATA_DIR: dataDir, ...CHEAP_ARGON2 } })
  let output = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => { output += chunk })
  const exited = once(child, 'exit')
  for (const deadline = Date.now() + 60_000; !output.includes('New password: ') && Date.now() < deadline;) await new Promise((resolve) => setTimeout(resolve, 50))
  child.stdin.write('\x03')
  const [code] = await exited as [number | null]
  t.equal(code, 130, output)
  t.equal(output.replace(/\r/g, '').trim(), 'New password:', 'no message after the prompt')
})

t.test('piped, only the first line is the password, a final newline optional', async (t) => {
  const config = loadConfig({ DATA_DIR: await tempDir(t), ...CHEAP_ARGON2 })
  t.equal(await runUsersCli(['add', 'alice'], { ...streamIo(`${PASSWORD}\r\nignored\n`, { terminal: false }), config }), 0)
  t.equal(await runUsersCli(['add', 'bob'], { ...streamIo(NEW_PASSWORD, { terminal: false }), config }), 0)
  const users = openStores(config).durable.users
  t.equal((await verifier.verify((await users.find('alice'))?.passwordHash ?? '', PASSWORD)).valid, true)
  t.equal((await verifier.verify((await users.find('bob'))?.passwordHash ?? '', NEW_PASSWORD)).valid, true)
})

t.test('the policy is applied with the username given', async (t) => {
  const config = loadConfig({ DATA_DIR: await tempDir(t), ...CHEAP_ARGON2 })
  for (const [password, message] of [
    ['passwordpassword', 'Password is too common: it appears in lists of breached passwords'],
    ['i am bob, and i like it', 'Password must not contain the username']
  ]) {
    const io = streamIo(`${password}\n`, { terminal: false })
    t.equal(await runUsersCli(['add', 'Bob'], { ...io, config }), 1)
    t.equal(io.written.stderr, `${message}\n`)
  }
  t.same(await openStores(config).durable.users.list(), [])
})

t.test('a username no login request can carry is refused', async (t) => {
  const config = loadConfig({ DATA_DIR: await tempDir(t), ...CHEAP_ARGON2 })
  const io = streamIo(`${PASSWORD}\n`, { terminal: false })
  t.equal(await runUsersCli(['add', 'x'.repeat(129)], { ...io, config }), 1)
  t.equal(io.written.stderr, 'Username must be 1 to 128 characters\n')
  t.same(await openStores(config).durable.users.list(), [])
})

t.test('every malformed command line is a usage error', async (t) => {
  const config = loadConfig({ DATA_DIR: await tempDir(t) })
  for (const args of [[], ['frobnicate'], ['add'], ['passwd'], ['remove', 'alice', 'bob'], ['list', 'alice'], ['toString', 'alice']]) {
    const io = streamIo('', { terminal: false })
    t.equal(await runUsersCli(args, { ...io, config }), 2, args.join(' '))
    t.match(io.written.stderr, args[0] === 'frobnicate' || args[0] === 'toString' ? new RegExp(`^Unknown command "${args[0]}"\n\n${USAGE.source.slice(1)}`) : USAGE)
  }
})

t.test('started through a symlinked directory (a release behind a "current" link), the CLI runs its command', async (t) => {
  const release = await tempDir(t)
  await symlink(path.dirname(path.dirname(nodeArgs('src/cli/users.ts')[0])), path.join(release, 'current'))
  const env = { ...CHEAP_ARGON2, DATA_DIR: await tempDir(t) }
  const users = (args: string[], input = '') => spawnSync(process.execPath, [path.join(release, 'current', 'cli', 'users.js'), ...args], { env, input, encoding: 'utf8' })
  const added = users(['add', 'alice'], `${PASSWORD}\n`)
  t.equal(added.status, 0, added.stderr)
  t.equal(users(['list']).stdout, 'alice\n', 'the user was added and is listed')
})
