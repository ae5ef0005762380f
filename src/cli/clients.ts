import { readFile } from 'node:fs/promises'
import { parseArgs } from 'node:util'
import { describeClient, InvalidClientError, keyRotationViolation, ManagedClientError, refuseManaged, registrationTime, validateClient, type Client } from '../clients/client.ts'
import { applyClients, describePlan, fileDigest, parseClientsFile, planHasChanges, type DeclaredClient } from '../clients/clients-file.ts'
import type { ClientRepository } from '../clients/repository.ts'
import { generateSecret, secretDigest, withGeneratedSecret, withRetiredSecrets, withRotatedSecret } from '../clients/secrets.ts'
import type { Config } from '../config.ts'
import { withStores } from '../storage/stores.ts'
import { runAsProgram } from './program.ts'

const USAGE = `Usage: npm run clients -- <command>

Commands:
  add <client_id> --scope "<scopes>" --audience <resource> [--audience ...] [--serves <resource> ...]
      [--exchange-audience <resource> ...] [--ttl <seconds>]
      register a client that authenticates with a secret; prints the secret, once, as the only line.
      --audience: a resource it gets tokens for (never JWT_AUDIENCE); --serves: a resource whose
      tokens it may introspect (JWT_AUDIENCE: login tokens); --exchange-audience: a resource it may
      exchange those tokens for (token exchange, RFC 8693)
  add <client_id> ... --jwks-file <file> | --jwks-uri <url>
      register a private_key_jwt client with its public keys (no secret)
  add <client_id> ... --federated-issuer <iss> --federated-subject <sub> --federated-jwks-uri <url>
      register a workload-identity client: a token of that issuer about that subject is its credential
  rotate-secret <client_id> [--old-expires-in <seconds>]
      print a new secret; the old one keeps working until retire-secret (or for the given seconds)
  retire-secret <client_id>    keep only the newest secret
  remove <client_id>           delete a client; its tokens are inactive at introspection at once
  list                         every client, its authentication, scopes, audiences, served and exchange resources (never secrets)
  generate-secret              print a new secret (first line) and its sha256:<hex> digest (second) for a clients file
  apply <file> [--dry-run] [--prune]
      reconcile the store with a clients file (YAML): print the plan, then apply it (--dry-run: only print).
      --prune: also remove the clients the file manages that it no longer declares
  diff <file>                  print what apply --prune would do; exit 0 when the store matches, 1 when it drifts

  rotate-secret, retire-secret and remove refuse a client the clients file manages unless given --force.

  SECRET=$(npm run --silent clients -- add billing --scope "orders:read" --audience https://orders.internal)
Clients are stored in Redis when Redis is configured (REDIS_URL, REDIS_SENTINELS or REDIS_CLUSTER_NODES), else in DATA_DIR/clients.json.`

export interface ClientsCliIo {
  stdout: NodeJS.WritableStream
  stderr: NodeJS.WritableStream
  config: Config
}

/** A mistake in the command line: the usage is printed and the exit code is 2. */
class UsageError extends Error {}

const OPTIONS = {
  scope: { type: 'string' },
  audience: { type: 'string', multiple: true },
  serves: { type: 'string', multiple: true },
  'exchange-audience': { type: 'string', multiple: true },
  ttl: { type: 'string' },
  'jwks-file': { type: 'string' },
  'jwks-uri': { type: 'string' },
  'federated-issuer': { type: 'string' },
  'federated-subject': { type: 'string' },
  'federated-jwks-uri': { type: 'string' },
  'old-expires-in': { type: 'string' },
  'dry-run': { type: 'boolean' },
  prune: { type: 'boolean' },
  force: { type: 'boolean' }
} as const

type Options = ReturnType<typeof parseArgs<{ options: typeof OPTIONS, allowPositionals: true }>>['values']

/** Which options each command takes; any other is a usage error, so a typo never passes silently. */
const COMMAND_OPTIONS: Record<string, ReadonlyArray<keyof typeof OPTIONS>> = {
  add: ['scope', 'audience', 'serves', 'exchange-audience', 'ttl', 'jwks-file', 'jwks-uri', 'federated-issuer', 'federated-subject', 'federated-jwks-uri'],
  'rotate-secret': ['old-expires-in', 'force'],
  'retire-secret': ['force'],
  remove: ['force'],
  list: [],
  'generate-secret': [],
  apply: ['dry-run', 'prune'],
  diff: []
}

/** The commands that take no positional argument, and those that take a file rather than a client id. */
const NO_ARGUMENT = new Set(['list', 'generate-secret'])
const FILE_ARGUMENT = new Set(['apply', 'diff'])

/** The clients command; returns the exit code (0 done, 1 failed, 2 usage). */
export async function runClientsCli (argv: string[], io: ClientsCliIo): Promise<number> {
  let command: string, clientId: string | undefined, options: Options
  try {
    const parsed = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true })
    ;[command, clientId] = parsed.positionals
    options = parsed.values
    const allowed = COMMAND_OPTIONS[command]
    if (command === undefined || !Object.hasOwn(COMMAND_OPTIONS, command)) throw new UsageError(command === undefined ? 'No command given' : `Unknown command "${command}"`)
    if (parsed.positionals.length !== (NO_ARGUMENT.has(command) ? 1 : 2)) {
      throw new UsageError(NO_ARGUMENT.has(command) ? `${command} takes no argument` : `${command} needs exactly one ${FILE_ARGUMENT.has(command) ? 'file' : 'client id'}`)
    }
    const stray = Object.keys(options).find((name) => !allowed.includes(name as keyof typeof OPTIONS))
    if (stray !== undefined) throw new UsageError(`--${stray} does not apply to ${command}`)
  } catch (error) {
    io.stderr.write(`${(error as Error).message}\n\n${USAGE}\n`)
    return 2
  }
  if (command === 'generate-secret') {
    const secret = generateSecret()
    io.stdout.write(`${secret}\n${fileDigest(secret)}\n`)
    return 0
  }
  try {
    // Everything the command needs from the command line and files is checked before Redis or the file is touched.
    const newClient = command === 'add' ? await clientFromOptions(clientId!, options, io.config.JWT_AUDIENCE) : undefined
    const rotationProblem = newClient !== undefined ? keyRotationViolation(newClient.client, io.config.JWT_KEY_ROTATION_SECONDS) : undefined
    if (rotationProblem !== undefined) throw new UsageError(`--ttl ${rotationProblem}`)
    const declared = FILE_ARGUMENT.has(command) ? await readClientsFile(clientId!, io.config.JWT_AUDIENCE) : undefined
    return await withStores(io.config, async ({ durable: { clients } }) => {
      if (declared !== undefined) return await applyFile(clients, declared, command === 'diff' ? 'diff' : options['dry-run'] === true ? 'dry-run' : 'apply', options.prune === true, io)
      if (command !== 'add' && command !== 'list' && options.force !== true) await refuseManagedUnlessForced(clients, clientId!)
      if (command === 'list') {
        for (const client of await clients.list()) io.stdout.write(`${describeClient(client)}\n`)
      } else if (newClient !== undefined) {
        await add(clients, newClient.client, newClient.secret, io)
      } else if (command === 'rotate-secret') {
        await rotateSecret(clients, clientId!, options['old-expires-in'], io)
      } else if (command === 'retire-secret') {
        await retireSecret(clients, clientId!, io)
      } else {
        if (!await clients.remove(clientId!)) throw noSuchClient(clientId!)
        io.stdout.write(`Removed client "${clientId!}"\n`)
      }
      return 0
    })
  } catch (error) {
    io.stderr.write(`${(error as Error).message}\n`)
    return error instanceof UsageError ? 2 : 1
  }
}

function seconds (name: string, value: string): number {
  if (!/^\d+$/.test(value)) throw new UsageError(`--${name} must be a whole number of seconds`)
  return Number(value)
}

/** The client `add` describes, validated (`userAudience` is JWT_AUDIENCE), and its secret when it has one. */
async function clientFromOptions (clientId: string, options: Options, userAudience: string): Promise<{ client: Client, secret?: string }> {
  if (options.scope === undefined) throw new UsageError('add needs --scope "<scopes>"')
  if (options.audience === undefined) throw new UsageError('add needs at least one --audience <resource>')
  const now = Date.now()
  const client: Client = {
    clientId,
    scopes: [...new Set(options.scope.split(' ').filter((scope) => scope !== ''))],
    audiences: [...new Set(options.audience)],
    ...(options.serves !== undefined ? { serves: [...new Set(options.serves)] } : {}),
    ...(options['exchange-audience'] !== undefined ? { exchangeAudiences: [...new Set(options['exchange-audience'])] } : {}),
    ...(options.ttl !== undefined ? { tokenTtlSeconds: seconds('ttl', options.ttl) } : {}),
    createdAt: now,
    updatedAt: now
  }
  const federated = [options['federated-issuer'], options['federated-subject'], options['federated-jwks-uri']]
  if (federated.some((value) => value !== undefined)) {
    const [issuer, subject, jwksUri] = federated
    if (issuer === undefined || subject === undefined || jwksUri === undefined) {
      throw new UsageError('A workload-identity client needs --federated-issuer, --federated-subject and --federated-jwks-uri')
    }
    client.federated = { issuer, subject, jwksUri }
  }
  if (options['jwks-uri'] !== undefined) client.jwksUri = options['jwks-uri']
  if (options['jwks-file'] !== undefined) client.jwks = await readJwksFile(options['jwks-file'])
  const withSecret = withGeneratedSecret(client, now)
  try {
    validateClient(withSecret.client, userAudience)
  } catch (error) {
    if (error instanceof InvalidClientError) throw new UsageError(error.message)
    throw error
  }
  return withSecret
}

async function readJwksFile (file: string): Promise<NonNullable<Client['jwks']>> {
  const text = await readFile(file, 'utf8').catch((error: NodeJS.ErrnoException) => {
    throw new UsageError(`Cannot read --jwks-file ${file} (${error.code ?? error.message})`)
  })
  try {
    return JSON.parse(text)
  } catch {
    throw new UsageError(`--jwks-file ${file} is not JSON`)
  }
}

async function add (clients: ClientRepository, client: Client, secret: string | undefined, io: ClientsCliIo): Promise<void> {
  // Stamped once everything is checked, as it is stored: see registrationTime.
  const createdAt = await registrationTime()
  await clients.create({ ...client, createdAt, updatedAt: createdAt })
  if (secret !== undefined) {
    io.stdout.write(`${secret}\n`)
    io.stderr.write(`Added client "${client.clientId}". Its secret is the line above; it is shown only this once.\n`)
  } else {
    io.stdout.write(`Added client "${client.clientId}" (${client.federated !== undefined ? 'workload identity' : 'private_key_jwt'})\n`)
  }
}

async function rotateSecret (clients: ClientRepository, clientId: string, oldExpiresIn: string | undefined, io: ClientsCliIo): Promise<void> {
  const expiresIn = oldExpiresIn !== undefined ? seconds('old-expires-in', oldExpiresIn) : undefined
  const secret = generateSecret()
  const updated = await clients.update(clientId, (client) => withRotatedSecret(client, secretDigest(secret), Date.now(), expiresIn))
  if (updated === undefined) throw noSuchClient(clientId)
  io.stdout.write(`${secret}\n`)
  io.stderr.write(expiresIn === undefined
    ? `New secret for "${clientId}" above. The old one works until: npm run clients -- retire-secret ${clientId}\n`
    : `New secret for "${clientId}" above. The old one stops working in ${expiresIn} seconds.\n`)
}

async function retireSecret (clients: ClientRepository, clientId: string, io: ClientsCliIo): Promise<void> {
  const updated = await clients.update(clientId, (client) => withRetiredSecrets(client, Date.now()))
  if (updated === undefined) throw noSuchClient(clientId)
  io.stdout.write(`Retired the older secret of "${clientId}"; only the newest works now.\n`)
}

/** A client the clients file manages is changed there: the CLI changes it only when forced (break-glass). */
async function refuseManagedUnlessForced (clients: ClientRepository, clientId: string): Promise<void> {
  try {
    refuseManaged(await clients.find(clientId))
  } catch (error) {
    if (error instanceof ManagedClientError) throw new Error(`${error.message} (or pass --force to change it here until the next apply)`)
    throw error
  }
}

async function readClientsFile (file: string, userAudience: string): Promise<DeclaredClient[]> {
  const text = await readFile(file, 'utf8').catch((error: NodeJS.ErrnoException) => {
    throw new Error(`Cannot read ${file} (${error.code ?? error.message})`)
  })
  return parseClientsFile(file, text, userAudience)
}

/** apply (or its dry run) prints the plan and applies it; diff prints what apply --prune would do and exits 1 on drift. */
async function applyFile (clients: ClientRepository, declared: DeclaredClient[], mode: 'apply' | 'dry-run' | 'diff', prune: boolean, io: ClientsCliIo): Promise<number> {
  const plan = await applyClients(clients, declared, { prune: prune || mode === 'diff', dryRun: mode !== 'apply' })
  io.stdout.write(describePlan(plan).join('\n') + '\n')
  if (mode === 'apply' && planHasChanges(plan)) io.stdout.write('Applied.\n')
  return mode === 'diff' && planHasChanges(plan) ? 1 : 0
}

function noSuchClient (clientId: string): Error {
  return new Error(`No such client "${clientId}"`)
}

await runAsProgram(import.meta.url, async (argv, config) => await runClientsCli(argv, { stdout: process.stdout, stderr: process.stderr, config }))
