#!/usr/bin/env node
// What npm test runs before the suite, all at once: the lint, the type check and the build of
// dist/ (emitted without a second check: the type check covers src/). Each is one process on one
// core, so on two cores the three take about half as long as in turn. Prints each one's output
// in this order and exits with the first failure's code, else 0.
//
// Usage: node scripts/checks.mjs (npm test runs it)

import { spawn } from 'node:child_process'
import { once } from 'node:events'

const CHECKS = [
  ['lint', ['run', '--silent', 'lint']],
  ['typecheck', ['run', '--silent', 'typecheck']],
  ['build', ['run', '--silent', 'build', '--', '--noCheck']]
]

/** Runs npm with these arguments to its end: its exit code and all it printed. */
async function npm (args) {
  const child = spawn('npm', args, { stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout.setEncoding('utf8').on('data', (chunk) => { output += chunk })
  child.stderr.setEncoding('utf8').on('data', (chunk) => { output += chunk })
  const [code] = await once(child, 'close')
  return { code: code ?? 1, output }
}

let failure = 0
for (const [name, result] of CHECKS.map(([name, args]) => [name, npm(args)])) {
  const { code, output } = await result
  console.log(`${name}: ${code === 0 ? 'passed' : `failed (exit code ${code})`}`)
  if (output.trim() !== '') console.log(output.trimEnd())
  if (failure === 0) failure = code
}
process.exit(failure)
