// Writes the settings table of docs/configuration.md, between its marker comments, from the schema
// the service validates its environment with (src/config.ts, compiled: run it after a build), so
// the table cannot drift from the settings. With --stdout it prints the page instead of writing
// it: test/docs/settings-table.test.ts compares that with the committed page.
import { readFile, writeFile } from 'node:fs/promises'
import { ConfigSchema, allowedValues } from '../dist/config.js'

const PAGE = new URL('../docs/configuration.md', import.meta.url)
const BEGIN = '<!-- settings table: generated from src/config.ts by `npm run docs:settings`, not edited here -->'
const END = '<!-- end of settings table -->'

/** A table cell's text: a `|` in it would end the cell. */
function cell (text) {
  return text.replaceAll('|', '\\|')
}

function defaultValue (schema) {
  if (schema.default === undefined) return 'unset'
  if (schema.default === '') return 'empty'
  return `\`${schema.default}\``
}

/** One row per setting, in the schema's order. */
function settingsTable () {
  const rows = Object.entries(ConfigSchema.properties).map(([name, schema]) => {
    if (schema.description === undefined) throw new Error(`${name} has no description in src/config.ts`)
    return `| \`${name}\` | ${cell(defaultValue(schema))} | ${cell(allowedValues(schema))} | ${cell(schema.description)} |`
  })
  return ['| Setting | Default | Allowed values | Description |', '|---|---|---|---|', ...rows].join('\n')
}

const page = await readFile(PAGE, 'utf8')
const begin = page.indexOf(BEGIN)
const end = page.indexOf(END)
if (begin === -1 || end < begin) throw new Error(`docs/configuration.md must hold the table between the lines ${BEGIN} and ${END}`)
const updated = `${page.slice(0, begin + BEGIN.length)}\n\n${settingsTable()}\n\n${page.slice(end)}`
if (process.argv.includes('--stdout')) process.stdout.write(updated)
else await writeFile(PAGE, updated)
