#!/usr/bin/env node
// npm test: the lint, the type check and the tap suite, all at once. The checks take a core for
// some ten seconds each, which the suite's own start (building dist/, starting Redis) leaves idle;
// run one after the other they added about twenty seconds to every run. What the checks print is
// shown after the suite's report; the exit code is the first failure's, else 0.
//
// Usage: npm test [-- <tap arguments>], e.g. npm test -- test/config.test.ts

import { spawn } from 'node:child_process'
import { once } from 'node:events'

/** Runs a command to its end: its exit code and, unless it inherits the terminal, all it printed. */
async function run (command, args, options = {}) {
  const child = spawn(command, args, { stdio: options.inherit === true ? 'inherit' : 'pipe', env: { ...process.env, ...options.env } })
  let output = ''
  child.stdout?.setEncoding('utf8').on('data', (chunk) => { output += chunk })
  child.stderr?.setEncoding('utf8').on('data', (chunk) => { output += chunk })
  const [code] = await once(child, 'close')
  return { code: code ?? 1, output }
}

const checks = [['lint', run('npm', ['run', '--silent', 'lint'])], ['typecheck', run('npm', ['run', '--silent', 'typecheck'])]]
// TypeScript run by Node's own type stripping, not tap's ts-node (docs/contributing.md).
const suite = await run('tap', ['--disable-coverage', ...process.argv.slice(2)], { inherit: true, env: { TAP_TYPE_STRIP_ONLY: '1' } })

let code = suite.code
for (const [name, check] of checks) {
  const { code: checkCode, output } = await check
  console.log(`\nnpm run ${name}: ${checkCode === 0 ? 'passed' : `failed (exit code ${checkCode})`}`)
  if (output.trim() !== '') console.log(output.trimEnd())
  if (code === 0) code = checkCode
}
process.exit(code)
