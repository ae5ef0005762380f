import { createInterface } from 'node:readline'
import { Writable } from 'node:stream'
import type { Config } from '../config.ts'
import { withStores } from '../storage/stores.ts'
import { runAsProgram } from './program.ts'
import { accountPasswordViolation, usernameViolation } from '../users/accounts.ts'
import { configuredPasswordHasher } from '../users/passwords.ts'
import { canonicalUsername, UserExistsError, type UserRepository } from '../users/repository.ts'

const USAGE = `Usage: npm run users -- <command>

Commands:
  add <username>      create a user
  passwd <username>   set a new password for a user (its earlier tokens stop working)
  remove <username>   delete a user (its tokens stop working)
  disable <username>  refuse the user's logins and its earlier tokens
  enable <username>   let a disabled user log in again (earlier tokens stay refused)
  list                print every username, one a line

On a terminal the password is asked twice, without echo. Otherwise the first line of stdin is
the password, so scripts can pipe it:
  printf '%s\\n' "$PASSWORD" | npm run users -- add alice
Users are stored in Redis when it is configured (REDIS_URL, REDIS_SENTINELS or
REDIS_CLUSTER_NODES), else in DATA_DIR/users.json.`

export interface UsersCliIo {
  stdin: NodeJS.ReadableStream & { isTTY?: boolean }
  stdout: NodeJS.WritableStream
  stderr: NodeJS.WritableStream
  config: Config
}

type Command = (users: UserRepository, username: string, io: UsersCliIo) => Promise<void>

const COMMANDS: Record<string, Command> = { add, passwd, remove, disable, enable }

/** Ctrl-C at a password prompt: the command stops quietly, with the shell's exit code for an interrupt. */
class Interrupted extends Error {}
const INTERRUPTED_EXIT_CODE = 130

/** The users command; returns the exit code (0 done, 1 failed, 2 usage, 130 interrupted). */
export async function runUsersCli (argv: string[], io: UsersCliIo): Promise<number> {
  const [name, username, ...extra] = argv
  const listing = name === 'list' && argv.length === 1
  const command = Object.hasOwn(COMMANDS, name) && username !== undefined && extra.length === 0 ? COMMANDS[name] : undefined
  if (!listing && command === undefined) {
    const known = name === undefined || name === 'list' || Object.hasOwn(COMMANDS, name)
    io.stderr.write(known ? `${USAGE}\n` : `Unknown command "${name}"\n\n${USAGE}\n`)
    return 2
  }
  try {
    await withStores(io.config, async ({ durable: { users } }) => {
      if (command === undefined) {
        for (const listed of await users.list()) io.stdout.write(`${listed}\n`)
      } else {
        await command(users, username, io)
      }
    })
    return 0
  } catch (error) {
    if (error instanceof Interrupted) return INTERRUPTED_EXIT_CODE
    io.stderr.write(`${(error as Error).message}\n`)
    return 1
  }
}

async function add (users: UserRepository, username: string, io: UsersCliIo): Promise<void> {
  const invalid = usernameViolation(username)
  if (invalid !== undefined) throw new Error(invalid)
  const existing = await users.find(username)
  // Checked before asking for a password nobody could use; create() still refuses a duplicate atomically.
  if (existing !== undefined) throw new UserExistsError(existing.username)
  const passwordHash = await newPasswordHash(username, io)
  const now = Date.now()
  await users.create({ username, passwordHash, createdAt: now, updatedAt: now })
  io.stdout.write(`Added user "${canonicalUsername(username)}"\n`)
}

async function passwd (users: UserRepository, username: string, io: UsersCliIo): Promise<void> {
  const user = await users.find(username)
  if (user === undefined) throw noSuchUser(username)
  if (!await users.setPasswordHash(user.username, await newPasswordHash(user.username, io))) throw noSuchUser(username)
  io.stdout.write(`Changed the password of "${user.username}"\n`)
}

async function remove (users: UserRepository, username: string, io: UsersCliIo): Promise<void> {
  if (!await users.remove(username)) throw noSuchUser(username)
  io.stdout.write(`Removed user "${canonicalUsername(username)}"\n`)
}

async function disable (users: UserRepository, username: string, io: UsersCliIo): Promise<void> {
  if (!await users.setDisabled(username, true)) throw noSuchUser(username)
  io.stdout.write(`Disabled user "${canonicalUsername(username)}"; its tokens are refused\n`)
}

async function enable (users: UserRepository, username: string, io: UsersCliIo): Promise<void> {
  if (!await users.setDisabled(username, false)) throw noSuchUser(username)
  io.stdout.write(`Enabled user "${canonicalUsername(username)}"\n`)
}

function noSuchUser (username: string): Error {
  return new Error(`No such user "${canonicalUsername(username)}"`)
}

/**
 * Reads the new password, checks it against the policy and hashes it. On a terminal it is typed
 * twice with no echo (the second time only once it passed the policy); otherwise it is the first
 * line of stdin.
 */
async function newPasswordHash (username: string, io: UsersCliIo): Promise<string> {
  const terminal = io.stdin.isTTY === true
  // On a terminal readline echoes what is typed to its output; this one swallows it.
  const silent = new Writable({ write: (_chunk, _encoding, done) => done() })
  const lines = createInterface({ input: io.stdin, output: terminal ? silent : undefined, terminal })
  let interrupted = false
  lines.on('SIGINT', () => { interrupted = true; lines.close() })
  // The iterator keeps lines that arrive before they are asked for, and ends when input ends or Ctrl-C closes it.
  const typedLines = lines[Symbol.asyncIterator]()
  const nextLine = async (prompt: string): Promise<string> => {
    if (terminal) io.stderr.write(prompt)
    const { done, value } = await typedLines.next()
    // The Enter key was not echoed either.
    if (terminal) io.stderr.write('\n')
    if (done === true) throw interrupted ? new Interrupted() : new Error('No password given')
    return value
  }
  let password: string
  try {
    password = await nextLine('New password: ')
    const violation = await accountPasswordViolation(username, password, io.config)
    if (violation !== undefined) throw new Error(violation)
    if (terminal && await nextLine('Repeat the password: ') !== password) throw new Error('The passwords do not match')
  } finally {
    lines.close()
  }
  return await configuredPasswordHasher(io.config).hash(password)
}

await runAsProgram(import.meta.url, async (argv, config) => await runUsersCli(argv, { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr, config }))
