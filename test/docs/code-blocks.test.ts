import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { once } from 'node:events'
import { readdirSync } from 'node:fs'
import { readdir, readFile, realpath, rm, symlink, writeFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import path from 'node:path'
import { promisify } from 'node:util'
import { createRemoteJWKSet, decodeJwt, importPKCS8, jwtVerify, SignJWT, type JWTPayload } from 'jose'
import t, { type Test } from 'tap'
import { EMBEDDED_KEY_FILE_NAME } from '../../src/tokens/keys.ts'
import { PASSWORD, runScript, tempDir } from '../helper.ts'
import { freePort } from '../redis-server.ts'

// The code blocks of every page (README.md and docs/*.md), each page in a session of its own (its
// own checkout, data dir, port, service and exported variables, as in a fresh terminal), its blocks
// run in order by the rule docs/contributing.md states: the HTML comment right above a block says
// what it is (`output`, `run: consumer`, `run: caller`, `run: resource server`, `not run: <why>`);
// an `sh` or `js` block without one is run as pasted; anything else fails.

interface Block { marker: string | undefined, language: string, code: string, line: number }

const ROOT = path.dirname(new URL('../../package.json', import.meta.url).pathname)
const PAGES = ['README.md', ...readdirSync(path.join(ROOT, 'docs')).filter((file) => file.endsWith('.md')).sort().map((file) => `docs/${file}`)]
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc')

/** The fenced blocks of a page, those indented in a list item too (their indent taken off). */
function codeBlocks (markdown: string): Block[] {
  const lines = markdown.split('\n')
  const blocks: Block[] = []
  for (let i = 0; i < lines.length; i++) {
    const fence = /^( *)```(\w*)$/.exec(lines[i])
    if (fence === null) continue
    const [, indent, language] = fence
    let previous = i - 1
    while (previous >= 0 && lines[previous].trim() === '') previous--
    const marker = /^<!-- (.+) -->$/.exec(lines[previous]?.trim() ?? '')?.[1]
    const end = lines.indexOf(`${indent}\`\`\``, i + 1)
    const code = lines.slice(i + 1, end).map((line) => line.startsWith(indent) ? line.slice(indent.length) : line).join('\n')
    blocks.push({ marker, language, code, line: i + 1 })
    i = end
  }
  return blocks
}

/** The same JSON shape: the same keys at every level, values of the same type. */
function shape (value: unknown): unknown {
  if (Array.isArray(value)) return value.map(shape)
  if (value !== null && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([key, inner]) => [key, shape(inner)]).sort())
  return typeof value
}

/**
 * How a program block is saved and started, by language: Debian's python3 (which sees Debian's
 * python3-jwt, unlike a pyenv python3 first on PATH), Go without modules against Debian's Go
 * packages.
 */
const PROGRAMS: Record<string, { extension: string, command: string, args: string[], env?: Record<string, string> }> = {
  js: { extension: 'mjs', command: process.execPath, args: [] },
  python: { extension: 'py', command: '/usr/bin/python3', args: [] },
  go: { extension: 'go', command: 'go', args: ['run'], env: { GO111MODULE: 'off', GOPATH: '/usr/share/gocode' } }
}

/** CI has just run these; the rest of a line runs as pasted. */
const DONE_BY_CI = new Set(['npm ci', 'npm run build'])

/** What bash itself exports and changes in every block: not the block's doing, so not carried over. */
const BASH_OWN = new Set(['PWD', 'OLDPWD', 'SHLVL', '_'])

// Pages are sessions of their own (ports, directories, services): three at a time, as most of a
// page's time is spent waiting for the service and the programs it starts.
t.jobs = 3
for (const page of PAGES) t.test(`every code block of ${page} runs as pasted`, (t) => runPage(t, page))

/** One page's blocks in order, in a session of its own. */
async function runPage (t: Test, page: string): Promise<void> {
  const blocks = codeBlocks(await readFile(path.join(ROOT, page), 'utf8'))
  if (blocks.length === 0) {
    t.pass(`${page} has no code blocks`)
    return
  }
  const dataDir = await tempDir(t)
  const project = await projectCopy(t)
  const exportsFile = path.join(await tempDir(t), 'exports')
  const port = await freePort()
  const adminPort = await freePort()
  const issuer = `http://127.0.0.1:${port}`
  // What sh blocks export, carried over to every block after them as in one terminal.
  const exported: Record<string, string> = {}
  const shellEnv = (): Record<string, string> => ({ PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? dataDir, DATA_DIR: dataDir, PORT: String(port), METRICS_PORT: '0', HOST: '127.0.0.1', JWT_ISSUER: issuer, ...exported })
  const programEnv = (): Record<string, string> => ({ PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? dataDir, AUTH_ISSUER: issuer, ...exported })
  // The service's port 3000 and the admin listener's 9000 are this page's throwaway ports.
  const pointed = (code: string) => code.replaceAll('localhost:3000', `127.0.0.1:${port}`)
    .replaceAll('localhost:9000', `127.0.0.1:${adminPort}`).replaceAll('ADMIN_PORT=9000', `ADMIN_PORT=${adminPort}`)
  let previousOutput: string | undefined
  let callerToken: string | undefined
  let service: ChildProcess | undefined
  t.teardown(() => { if (service?.pid !== undefined) process.kill(-service.pid, 'SIGKILL') })

  for (const block of blocks) {
    const where = `${page}:${block.line} (${block.language === '' ? 'text' : block.language})`
    if (block.marker?.startsWith('not run: ') === true) {
      t.ok(block.marker.length > 'not run: '.length, `${where}: not run, ${block.marker.slice(9)}`)
      continue
    }
    if (block.marker === 'output') {
      if (previousOutput === undefined) { t.fail(`${where}: an output block follows no block that ran`); continue }
      if (block.language === 'json') {
        const printed = previousOutput.slice(previousOutput.lastIndexOf('\n{') + 1)
        t.same(shape(JSON.parse(printed)), shape(JSON.parse(block.code)), `${where}: the real output has the same JSON keys`)
      } else {
        for (const line of block.code.split('\n')) t.ok(previousOutput.split('\n').includes(line), `${where}: printed "${line}"`)
      }
      previousOutput = undefined
      continue
    }
    if (block.marker === 'run: consumer' && block.language === 'ts') {
      await runConsumer(t, block.code, { issuer, dataDir }, where)
      previousOutput = undefined
      continue
    }
    if (block.marker === 'run: resource server' && block.language in PROGRAMS) {
      if (callerToken === undefined) { t.fail(`${where}: a resource server follows no caller`); continue }
      await runResourceServer(t, block, await program(project, block), { issuer, dataDir, token: callerToken, shellEnv: shellEnv(), programEnv: programEnv() }, where)
      previousOutput = undefined
      continue
    }
    if (block.language === 'js' && (block.marker === undefined || block.marker === 'run: caller')) {
      const result = await run(process.execPath, [await program(project, block)], { cwd: project, env: programEnv() })
      t.equal(result.code, 0, `${where}: exits 0`, { output: result.output })
      if (block.marker === 'run: caller') callerToken = await printedToken(t, result, issuer, where)
      previousOutput = result.output
      continue
    }
    if ((block.marker !== undefined && block.marker !== 'run: caller') || block.language !== 'sh') {
      t.fail(`${where}: no rule runs this block; mark it as docs/contributing.md says`)
      continue
    }
    const script = pointed(block.code).split('\n')
      .map((line) => line.split(' && ').filter((step) => !DONE_BY_CI.has(step.trim())).join(' && '))
      .join('\n')
    if (/(^|\n)npm start\s*$/.test(script)) {
      service = spawn('bash', ['-c', script], { cwd: project, env: shellEnv(), detached: true, stdio: 'ignore' })
      await waitUntil(service, () => fetch(`${issuer}/health/ready`).then((response) => response.ok, () => false), `${where}: the service did not start`)
      t.pass(`${where}: the service is up`)
      previousOutput = undefined
      continue
    }
    const before = shellEnv()
    await rm(exportsFile, { force: true })
    // The block as pasted; on its way out, bash writes its exported variables down.
    const result = await run('bash', ['-c', `trap 'env -0 > ${exportsFile}' EXIT\n${script}`], { cwd: project, env: before })
    t.equal(result.code, 0, `${where}: exits 0`, { output: result.output })
    const after = await readFile(exportsFile, 'utf8').catch(() => '')
    for (const variable of after.split('\0').filter((entry) => entry !== '')) {
      const [name, value] = [variable.slice(0, variable.indexOf('=')), variable.slice(variable.indexOf('=') + 1)]
      if (!BASH_OWN.has(name) && before[name] !== value) exported[name] = value
    }
    if (block.marker === 'run: caller') callerToken = await printedToken(t, result, issuer, where)
    previousOutput = result.output
  }
}

/**
 * The project root the blocks run from, as a user's checkout: a throwaway directory whose entries
 * link to the repo's, so what a block writes (key files, programs) stays out of the repo.
 */
async function projectCopy (t: Test): Promise<string> {
  const project = await realpath(await tempDir(t, 'auth-docs-'))
  for (const entry of await readdir(ROOT)) {
    if (entry !== '.git') await symlink(path.join(ROOT, entry), path.join(project, entry))
  }
  return project
}

/** A program block saved in the project as a user would save it (`js` as an ES module, so it resolves the project's node_modules). */
async function program (project: string, block: Block): Promise<string> {
  const file = path.join(project, `block-${block.line}.${PROGRAMS[block.language].extension}`)
  await writeFile(file, block.code)
  return file
}

/** Runs a program to its end: its exit code, its stdout, and all it printed. */
async function run (file: string, args: string[], options: { cwd: string, env: Record<string, string> }): Promise<{ code: number, stdout: string, output: string }> {
  return await promisify(execFile)(file, args, options).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, output: `${stdout}\n${stderr}` }),
    (error: { code: number, stdout: string, stderr: string }) => ({ code: error.code, stdout: error.stdout, output: `${error.stdout}\n${error.stderr}` })
  )
}

/** A caller's last printed line, when it is an access token of the service (at+jwt, signed with a key of its JWKS). */
async function printedToken (t: Test, result: { stdout: string, output: string }, issuer: string, where: string): Promise<string | undefined> {
  const printed = result.stdout.trim().split('\n').at(-1) ?? ''
  const verified = await jwtVerify(printed, createRemoteJWKSet(new URL('/.well-known/jwks.json', issuer)), { issuer, typ: 'at+jwt' })
    .then(() => '', (error: Error) => error.message)
  t.equal(verified, '', `${where}: prints an access token of the service (at+jwt)`, { output: result.output })
  return verified === '' ? printed : undefined
}

/** Polls `up` until it is true, failing if `child` exits first or a minute passes. */
async function waitUntil (child: ChildProcess, up: () => Promise<boolean>, failure: string): Promise<void> {
  for (const deadline = Date.now() + 60_000; !(await up());) {
    if (Date.now() > deadline || child.exitCode !== null) throw new Error(failure)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

/**
 * A token signed with the key of the page's service (embedded mode keeps it in DATA_DIR), with
 * claims the service itself does not issue together: what a recipe must refuse on its own.
 */
async function signedByService ({ issuer, dataDir }: { issuer: string, dataDir: string }, claims: JWTPayload): Promise<string> {
  const key = await importPKCS8(await readFile(path.join(dataDir, EMBEDDED_KEY_FILE_NAME), 'utf8'), 'EdDSA')
  const { keys: [{ kid }] } = await (await fetch(new URL('/.well-known/jwks.json', issuer))).json() as { keys: Array<{ kid: string }> }
  return await new SignJWT(claims).setProtectedHeader({ alg: 'EdDSA', typ: 'at+jwt', kid })
    .setIssuer(issuer).setIssuedAt().setExpirationTime('5m').setJti(randomUUID()).sign(key)
}

/**
 * The consumer program: type-checked as a user would compile it, run, and called with and without
 * a token, and with a client's token for its audience (as a client registered for JWT_AUDIENCE
 * before the service refused that would hold).
 */
async function runConsumer (t: Test, code: string, service: { issuer: string, dataDir: string }, where: string): Promise<void> {
  const { issuer } = service
  const file = path.join(ROOT, 'test', `.readme-consumer-${randomUUID()}.ts`)
  await writeFile(file, code)
  t.teardown(() => rm(file, { force: true }))
  const compiled = await promisify(execFile)(process.execPath, [tsc, '--noEmit', '--strict', '--skipLibCheck', '--target', 'es2022', '--module', 'nodenext', '--moduleResolution', 'nodenext', file])
    .then(() => '', (error: { stdout: string }) => error.stdout)
  t.equal(compiled, '', `${where}: type-checks`)

  const port = await freePort()
  const consumer = spawn(process.execPath, [file], { env: { PATH: process.env.PATH ?? '', AUTH_SERVICE_URL: issuer, AUTH_ISSUER: issuer, PORT: String(port) }, stdio: 'ignore' })
  t.teardown(() => { consumer.kill('SIGKILL') })
  const hello = (authorization?: string) => fetch(`http://127.0.0.1:${port}/hello`, { headers: authorization === undefined ? {} : { authorization } })
  await waitUntil(consumer, () => hello().then(() => true, () => false), `${where}: the consumer did not start`)
  // alice, whom the page added with this password before the consumer.
  const login = await fetch(`${issuer}/api/auth/login`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'alice', password: PASSWORD })
  })
  const token = (await login.json()).data.accessToken as string
  const answered = await hello(`Bearer ${token}`)
  t.same({ status: answered.status, body: await answered.json() }, { status: 200, body: { message: 'Hello, alice' } }, `${where}: a valid token is let in`)
  t.equal((await hello()).status, 401, `${where}: no token, 401`)
  t.equal((await hello(`Bearer ${token.slice(0, -4)}AAAA`)).status, 401, `${where}: a forged signature, 401`)
  const clientToken = await signedByService(service, { sub: 'alice', client_id: 'alice', aud: decodeJwt(token).aud, scope: 'reports:read' })
  t.equal((await hello(`Bearer ${clientToken}`)).status, 401, `${where}: a client's token, 401`)
  consumer.kill('SIGTERM')
  await once(consumer, 'exit')
}

/**
 * The resource server program: started, then called with the caller's token (let in, named by its
 * client_id), with none (401), with a forged signature (401), with a token for its audience that
 * lacks every scope it asked for (403), and with one that has them but no client_id, as only a
 * login token has (401).
 */
async function runResourceServer (t: Test, block: Block, file: string, context: { issuer: string, dataDir: string, token: string, shellEnv: Record<string, string>, programEnv: Record<string, string> }, where: string): Promise<void> {
  const port = await freePort()
  const { command, args, env } = PROGRAMS[block.language]
  // A process group of its own: `go run` leaves the program it built running when it is killed alone.
  const server = spawn(command, [...args, file], { cwd: path.dirname(file), env: { ...context.programEnv, ...env, PORT: String(port) }, stdio: 'ignore', detached: true })
  const stop = (signal: NodeJS.Signals) => { if (server.exitCode === null && server.signalCode === null) process.kill(-server.pid!, signal) }
  t.teardown(() => { stop('SIGKILL') })
  const orders = (authorization?: string) => fetch(`http://localhost:${port}/orders`, { headers: authorization === undefined ? {} : { authorization } })
  await waitUntil(server, () => orders().then(() => true, () => false), `${where}: the resource server did not start`)
  const { client_id: caller, aud, sub, act } = decodeJwt(context.token)
  // An exchanged token (RFC 8693) is also named by whom it acts for and its actors, outermost first.
  const actors: unknown[] = []
  for (let actor = act as { sub: string, act?: unknown } | undefined; actor !== undefined; actor = actor.act as typeof actor) actors.push(actor.sub)
  const expected = act === undefined ? { caller, orders: [] } : { caller, subject: sub, actors, orders: [] }
  const answered = await orders(`Bearer ${context.token}`)
  t.same({ status: answered.status, body: await answered.json() }, { status: 200, body: expected }, `${where}: the caller's token is let in`)
  t.equal((await orders()).status, 401, `${where}: no token, 401`)
  t.equal((await orders(`Bearer ${context.token.slice(0, -4)}AAAA`)).status, 401, `${where}: a forged signature, 401`)
  const unscoped = await unscopedToken(context.issuer, String(aud), context.shellEnv, `docs-unscoped-${block.line}`)
  t.equal((await orders(`Bearer ${unscoped}`)).status, 403, `${where}: a token without the scope, 403`)
  const noClient = await signedByService(context, { sub: 'alice', aud, scope: String(decodeJwt(context.token).scope) })
  t.equal((await orders(`Bearer ${noClient}`)).status, 401, `${where}: a token without client_id, 401`)
  stop('SIGTERM')
  await once(server, 'exit')
}

/** A token for `audience` from a client `clientId`, registered here with an unrelated scope only. */
async function unscopedToken (issuer: string, audience: string, env: Record<string, string>, clientId: string): Promise<string> {
  const added = await runScript('src/cli/clients.ts', ['add', clientId, '--scope', 'unrelated', '--audience', audience], { env })
  const granted = await fetch(new URL('/oauth2/token', issuer), {
    method: 'POST',
    headers: { authorization: `Basic ${btoa(`${clientId}:${added.stdout.trim()}`)}` },
    body: new URLSearchParams({ grant_type: 'client_credentials' })
  })
  return ((await granted.json()) as { access_token: string }).access_token
}
