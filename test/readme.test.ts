import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import { rm, writeFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import path from 'node:path'
import { promisify } from 'node:util'
import t, { type Test } from 'tap'
import { PASSWORD, tempDir } from './helper.js'
import { freePort } from './redis-server.js'

// The README's code blocks, run in order by the rule its Tests section states: the HTML comment
// right above a block says what it is (`output`, `run: consumer`, `not run: <why>`); an `sh` block
// without one is run as pasted; anything else fails.

interface Block { marker: string | undefined, language: string, code: string, line: number }

const README = readFileSync(new URL('../README.md', import.meta.url), 'utf8')
const ROOT = path.dirname(new URL('../package.json', import.meta.url).pathname)
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc')

function codeBlocks (markdown: string): Block[] {
  const lines = markdown.split('\n')
  const blocks: Block[] = []
  for (let i = 0; i < lines.length; i++) {
    const fence = /^```(\w*)$/.exec(lines[i])
    if (fence === null) continue
    let previous = i - 1
    while (previous >= 0 && lines[previous].trim() === '') previous--
    const marker = /^<!-- (.+) -->$/.exec(lines[previous] ?? '')?.[1]
    const end = lines.indexOf('```', i + 1)
    blocks.push({ marker, language: fence[1], code: lines.slice(i + 1, end).join('\n'), line: i + 1 })
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

/** CI has just run these; the rest of a line runs as pasted. */
const DONE_BY_CI = new Set(['npm ci', 'npm run build'])

t.test('every code block in the README runs as pasted', async (t) => {
  const dataDir = await tempDir(t)
  const port = await freePort()
  const env = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? dataDir, DATA_DIR: dataDir, PORT: String(port), METRICS_PORT: '0', HOST: '127.0.0.1' }
  const pointed = (code: string) => code.replaceAll('localhost:3000', `127.0.0.1:${port}`)
  let previousOutput: string | undefined
  let service: ChildProcess | undefined
  t.teardown(() => { if (service?.pid !== undefined) process.kill(-service.pid, 'SIGKILL') })

  for (const block of codeBlocks(README)) {
    const where = `README.md:${block.line} (${block.language === '' ? 'text' : block.language})`
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
      await runConsumer(t, block.code, `http://127.0.0.1:${port}`, where)
      previousOutput = undefined
      continue
    }
    if (block.marker !== undefined || block.language !== 'sh') {
      t.fail(`${where}: no rule runs this block; mark it as the README's Tests section says`)
      continue
    }
    const script = pointed(block.code).split('\n')
      .map((line) => line.split(' && ').filter((step) => !DONE_BY_CI.has(step.trim())).join(' && '))
      .join('\n')
    if (/(^|\n)npm start\s*$/.test(script)) {
      service = spawn('bash', ['-c', script], { cwd: ROOT, env, detached: true, stdio: 'ignore' })
      const ready = `http://127.0.0.1:${port}/health/ready`
      for (const deadline = Date.now() + 60_000; !(await fetch(ready).then((response) => response.ok, () => false));) {
        if (Date.now() > deadline || service.exitCode !== null) throw new Error(`${where}: the service did not start`)
        await new Promise((resolve) => setTimeout(resolve, 100))
      }
      t.pass(`${where}: the service is up`)
      previousOutput = undefined
      continue
    }
    const result = await promisify(execFile)('bash', ['-c', script], { cwd: ROOT, env }).then(
      ({ stdout, stderr }) => ({ code: 0, output: `${stdout}\n${stderr}` }),
      (error: { code: number, stdout: string, stderr: string }) => ({ code: error.code, output: `${error.stdout}\n${error.stderr}` })
    )
    t.equal(result.code, 0, `${where}: exits 0`, { output: result.output })
    previousOutput = result.output
  }
})

/** The consumer program: type-checked as a user would compile it, run, and called with and without a token. */
async function runConsumer (t: Test, code: string, authServiceUrl: string, where: string): Promise<void> {
  const file = path.join(ROOT, 'test', `.readme-consumer-${process.pid}.ts`)
  await writeFile(file, code)
  t.teardown(() => rm(file, { force: true }))
  const compiled = await promisify(execFile)(process.execPath, [tsc, '--noEmit', '--strict', '--skipLibCheck', '--target', 'es2022', '--module', 'nodenext', '--moduleResolution', 'nodenext', file])
    .then(() => '', (error: { stdout: string }) => error.stdout)
  t.equal(compiled, '', `${where}: type-checks`)

  const port = await freePort()
  const consumer = spawn(process.execPath, [file], { env: { PATH: process.env.PATH ?? '', AUTH_SERVICE_URL: authServiceUrl, PORT: String(port) }, stdio: 'ignore' })
  t.teardown(() => { consumer.kill('SIGKILL') })
  const hello = (authorization?: string) => fetch(`http://127.0.0.1:${port}/hello`, { headers: authorization === undefined ? {} : { authorization } })
  for (const deadline = Date.now() + 60_000; !(await hello().then(() => true, () => false));) {
    if (Date.now() > deadline || consumer.exitCode !== null) throw new Error(`${where}: the consumer did not start`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  // alice, whom the quick start added with this password.
  const login = await fetch(`${authServiceUrl}/api/auth/login`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'alice', password: PASSWORD })
  })
  const token = (await login.json()).data.accessToken as string
  const answered = await hello(`Bearer ${token}`)
  t.same({ status: answered.status, body: await answered.json() }, { status: 200, body: { message: 'Hello, alice' } }, `${where}: a valid token is let in`)
  t.equal((await hello()).status, 401, `${where}: no token, 401`)
  t.equal((await hello(`Bearer ${token.slice(0, -4)}AAAA`)).status, 401, `${where}: a forged signature, 401`)
  consumer.kill('SIGTERM')
  await once(consumer, 'exit')
}
