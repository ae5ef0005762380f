#!/usr/bin/env node
// Lints the committed OpenAPI document with both linters and fails on any error or warning:
//   redocly lint   redocly.yaml (its recommended rules). It exits 0 on warnings, so its JSON report
//                  is counted here.
//   spectral lint  .spectral.yaml (spectral:oas), with --fail-severity=warn.
// Neither needs the network: both rulesets ship with the packages, and Redocly's usage telemetry
// and update check are switched off here (and telemetry in redocly.yaml too).
//
// Usage: node scripts/lint-openapi.mjs [document]   (default both: openapi/openapi.json, openapi/admin.json)

import { spawnSync } from 'node:child_process'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const documents = process.argv[2] !== undefined ? [process.argv[2]] : ['openapi/openapi.json', 'openapi/admin.json']
const bin = (name) => join(root, 'node_modules', '.bin', name)

/** Runs a linter in the repo root; a missing binary or a crash counts as a failure. */
function run (command, args, options = {}) {
  const result = spawnSync(command, args, { cwd: root, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, ...options })
  if (result.error) console.error(`${command}: ${result.error.message}`)
  return result
}

let failed = false

for (const document of documents) {
  const redocly = run(bin('redocly'), ['lint', document, '--format=json'], {
    env: { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true' }
  })
  let report
  try {
    report = JSON.parse(redocly.stdout)
  } catch {
    console.error(`redocly lint did not produce a report:\n${redocly.stderr ?? ''}`)
    failed = true
  }
  if (report !== undefined) {
    for (const problem of report.problems) {
      const { pointer, start } = problem.location[0] ?? {}
      console.log(`${document}:${start?.line ?? 0}:${start?.col ?? 0} ${problem.severity} ${problem.ruleId} ${pointer ?? ''}: ${problem.message}`)
    }
    const { errors, warnings, ignored } = report.totals
    console.log(`redocly lint (recommended): ${errors} errors, ${warnings} warnings, ${ignored} ignored`)
    if (errors + warnings > 0 || redocly.status !== 0) failed = true
  }

  const spectral = run(bin('spectral'), ['lint', document, '--ruleset', '.spectral.yaml', '--fail-severity=warn'], { stdio: 'inherit' })
  console.log(`spectral lint (spectral:oas): ${spectral.status === 0 ? 'no problems' : 'failed'}`)
  if (spectral.status !== 0) failed = true
}

process.exit(failed ? 1 : 0)
