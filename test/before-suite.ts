// tap runs this once before any test file (`tap.before` in package.json).
import { execFileSync } from 'node:child_process'
import { readdirSync, statSync } from 'node:fs'
import { createRequire } from 'node:module'
import path from 'node:path'
import { startSharedTopologies } from './shared-topologies.ts'

// Tests that spawn the service or a CLI run the compiled JavaScript in dist/, as production does,
// instead of compiling TypeScript in every child process (seconds each on a busy machine). Built
// here unless it is newer than every file of src/ (npm test has just built it, scripts/checks.mjs),
// and emitted without a second type check: `npm test` checks src/ with the tests.
const newestSource = Math.max(...readdirSync('src', { recursive: true, withFileTypes: true })
  .filter((entry) => entry.isFile()).map((entry) => statSync(path.join(entry.parentPath, entry.name)).mtimeMs))
const built = statSync('dist/server.js', { throwIfNoEntry: false })?.mtimeMs ?? 0
if (built < newestSource) {
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc')
  execFileSync(process.execPath, [tsc, '-p', 'tsconfig.json', '--noCheck'], { stdio: 'inherit' })
}

// The Redis topologies every test file shares, each started when a file first asks for it.
await startSharedTopologies()
