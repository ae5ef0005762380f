import { readFile } from 'node:fs/promises'
import t from 'tap'
import { runScript } from '../helper.ts'

const PAGE = 'docs/configuration.md'

t.test('the settings table of docs/configuration.md is what the config schema generates', async (t) => {
  const generated = await runScript('scripts/settings-table.mjs', ['--stdout'])
  t.equal(generated.code, 0, generated.stderr)
  t.equal(generated.stdout, await readFile(PAGE, 'utf8'), `${PAGE} is stale: run \`npm run docs:settings\` and commit it`)
})
