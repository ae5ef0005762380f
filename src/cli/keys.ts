import { mkdir, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { parseArgs } from 'node:util'
import type { Config } from '../config.ts'
import { generatedKeyPlace, withStores } from '../storage/stores.ts'
import { keyState, rotationSchedule, switchAt, UnknownKeyError, type StoredSigningKey } from '../tokens/key-lifecycle.ts'
import type { KeyEncryptionKey } from '../tokens/key-encryption.ts'
import { loadKeySource, signingKeyFromPem, writePrivateKeyFile } from '../tokens/keys.ts'
import { revokeKey } from '../tokens/managed-keys.ts'
import { runAsProgram } from './program.ts'

const USAGE = `Usage: npm run keys -- <command>

Commands:
  generate <file> [--if-missing]
      write a new PEM private key for JWT_ALGORITHM (EdDSA by default) to <file>, readable by its
      owner only. An existing file is never overwritten: without --if-missing that is an error,
      with it the command succeeds and leaves the file as it is.
Managed keys (JWT_KEY_ROTATION_SECONDS set; the same settings as the service):
  list             every published key: its kid, state (next, current, retired) and times
  revoke <kid>     remove the key at once: out of the JWKS, its tokens refused by every replica
                   within seconds; when it was signing, the next key (or a new one) signs from now
  export <dir>     write the published keys as PEM files, to go back to key files (docs/key-rotation.md)`

export interface KeysCliIo {
  stdout: NodeJS.WritableStream
  stderr: NodeJS.WritableStream
  config: Config
}

/** A mistake in the command line: the usage is printed and the exit code is 2. */
class UsageError extends Error {}

/** Each command and the positionals it takes. */
const COMMANDS: Record<string, number> = { generate: 1, list: 0, revoke: 1, export: 1 }

/**
 * The command line's command, its positionals and --if-missing. A kid is a base64url thumbprint
 * and begins with '-' one time in 64, so after a command that takes no option (every one but
 * generate) each argument is a positional, the '--' that option parsers ask for allowed before it.
 */
function parseCommandLine (argv: string[]): { positionals: string[], ifMissing: boolean } {
  const [command, ...rest] = argv
  if (command === undefined || command === 'generate' || command.startsWith('-')) {
    const parsed = parseArgs({ args: argv, options: { 'if-missing': { type: 'boolean' } }, allowPositionals: true, strict: true })
    return { positionals: parsed.positionals, ifMissing: parsed.values['if-missing'] === true }
  }
  const positionals = [command, ...(rest[0] === '--' ? rest.slice(1) : rest)]
  return { positionals: positionals.filter((argument) => argument !== '--if-missing'), ifMissing: positionals.includes('--if-missing') }
}

/** The keys command; returns the exit code (0 done, 1 failed, 2 usage). */
export async function runKeysCli (argv: string[], io: KeysCliIo): Promise<number> {
  let command: string, argument: string | undefined, ifMissing: boolean
  try {
    const parsed = parseCommandLine(argv)
    ;[command, argument] = parsed.positionals
    ifMissing = parsed.ifMissing
    if (command === undefined || !Object.hasOwn(COMMANDS, command)) throw new UsageError(command === undefined ? 'No command given' : `Unknown command "${command}"`)
    if (parsed.positionals.length !== COMMANDS[command] + 1) throw new UsageError(`${command} takes ${['no argument', 'one argument'][COMMANDS[command]]}`)
    if (ifMissing && command !== 'generate') throw new UsageError(`--if-missing does not apply to ${command}`)
  } catch (error) {
    io.stderr.write(`${(error as Error).message}\n\n${USAGE}\n`)
    return 2
  }
  try {
    if (command === 'generate') await generate(argument!, ifMissing, io)
    else await managedKeysCommand(command, argument, io)
    return 0
  } catch (error) {
    io.stderr.write(`${(error as Error).message}\n`)
    return error instanceof UsageError || error instanceof UnknownKeyError ? 2 : 1
  }
}

async function generate (file: string, ifMissing: boolean, io: KeysCliIo): Promise<void> {
  const algorithm = io.config.JWT_ALGORITHM
  try {
    const written = await writePrivateKeyFile(file, algorithm, ifMissing)
    io.stdout.write(written ? `Wrote a new ${algorithm} signing key to ${file}\n` : `${file} already exists; left unchanged\n`)
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    throw new Error(code === 'EEXIST' ? `${file} already exists; refusing to overwrite a signing key` : `Cannot write ${file}: ${(error as Error).message}`)
  }
}

const iso = (time: number | undefined) => time === undefined ? '-' : new Date(time).toISOString()
/** A line of `keys list`: a kid, a state and four times, in columns. */
const row = (...cells: string[]) => `${cells.map((cell, i) => cell.padEnd([43, 7, 24, 24, 24][i] ?? 0)).join('  ').trimEnd()}\n`

async function managedKeysCommand (command: string, argument: string | undefined, io: KeysCliIo): Promise<void> {
  const { config } = io
  if (config.JWT_KEY_ROTATION_SECONDS === 0) throw new UsageError(`${command} applies to managed keys: set JWT_KEY_ROTATION_SECONDS (and JWT_KEY_ENCRYPTION_KEY_FILE) as the service has them`)
  const keys = await loadKeySource(config, generatedKeyPlace(config))
  if (!keys.managed) throw new Error('unreachable: JWT_KEY_ROTATION_SECONDS is set')
  const schedule = rotationSchedule(config.JWT_KEY_ROTATION_SECONDS)
  await withStores(config, async ({ durable: { signingKeys } }) => {
    const now = Date.now()
    const published = (await signingKeys.list()).filter((key) => keyState(key, now) !== 'expired')
    if (command === 'list') {
      io.stdout.write(row('kid', 'state', 'created', 'signs from', 'signs until', 'published until'))
      for (const key of published) io.stdout.write(row(key.kid, keyState(key, now), ...[key.createdAt, key.activatesAt, key.retiresAt, key.expiresAt].map(iso)))
      const switching = switchAt(published, now, schedule)
      if (switching !== undefined) io.stdout.write(`Next switch of the signing key: ${iso(switching)}\n`)
    } else if (command === 'revoke') {
      const kid = argument!
      const after = await revokeKey(signingKeys, keys.kek, config.JWT_ALGORITHM, kid)
      const signing = after.find((key) => keyState(key, Date.now()) === 'current')
      io.stdout.write(`Revoked ${kid}: it has left the JWKS, and every replica refuses its tokens within seconds. Signing now: ${signing?.kid ?? '-'}\n`)
    } else {
      await exportKeys(published, argument!, keys.kek, now, io)
      // Until then the managed keys do nothing the exported files do not hold.
      const current = published.find((key) => keyState(key, now) === 'current')
      const deadline = current?.retiresAt ?? (current !== undefined ? current.activatesAt + schedule.intervalMs - schedule.leadMs : now)
      io.stderr.write(`Roll every replica out to these key files before ${iso(deadline)}: the managed keys change then.\n`)
    }
  })
}

/**
 * The published keys as files, for key files again: the signing key's private key (for
 * JWT_PRIVATE_KEY_FILE) and the others' public keys (JWT_VERIFY_KEY_FILES), so replicas on key
 * files and on managed keys verify each other's tokens while the rollout runs.
 */
async function exportKeys (published: StoredSigningKey[], dir: string, kek: KeyEncryptionKey, now: number, io: KeysCliIo): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 })
  const files: Record<'signing' | 'verifying', string[]> = { signing: [], verifying: [] }
  for (const key of published) {
    const opened = signingKeyFromPem(kek.open(key.kid, key.sealedPrivateKey), key.algorithm, `the managed signing key ${key.kid}`)
    const signing = keyState(key, now) === 'current'
    const file = path.join(dir, `${key.kid}.pem`)
    await writeFile(file, signing ? opened.privateKeyPem : opened.publicKeyPem, { mode: signing ? 0o600 : 0o644, flag: 'wx' })
    files[signing ? 'signing' : 'verifying'].push(file)
  }
  io.stdout.write(`JWT_PRIVATE_KEY_FILE=${files.signing.join(',')}\nJWT_VERIFY_KEY_FILES=${files.verifying.join(',')}\n`)
}

await runAsProgram(import.meta.url, async (argv, config) => await runKeysCli(argv, { stdout: process.stdout, stderr: process.stderr, config }))
