// tap runs this once before any test file (`tap.before` in package.json).
import { execFileSync } from 'node:child_process'
import { createRequire } from 'node:module'
import { startSharedTopologies } from './shared-topologies.ts'

// Tests that spawn the service or a CLI run the compiled JavaScript in dist/, as production does,
// instead of compiling TypeScript in every child process (seconds each on a busy machine). Emitted
// without a second type check: `npm test` has just checked src/ with the tests.
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc')
execFileSync(process.execPath, [tsc, '-p', 'tsconfig.json', '--noCheck'], { stdio: 'inherit' })

// The Redis topologies every test file shares, each started when a file first asks for it.
await startSharedTopologies()
