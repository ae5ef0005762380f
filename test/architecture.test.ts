import { readdirSync, readFileSync, statSync } from 'node:fs'
import path from 'node:path'
import t from 'tap'

// The import rules of docs/architecture.md, held against the code: every relative import in src/
// crosses only a line the page's table draws.

const SRC = new URL('../src/', import.meta.url).pathname
const PAGE = readFileSync(new URL('../docs/architecture.md', import.meta.url), 'utf8')
const DOMAIN = new Set(['users', 'clients', 'oauth', 'tokens', 'limits'])

function files (dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const file = path.join(dir, name)
    return statSync(file).isDirectory() ? files(file) : file.endsWith('.ts') ? [file] : []
  })
}

/** The folder (or root file, without .ts) a path of src/ belongs to. */
function area (file: string): string {
  const parts = path.relative(SRC, file).split(path.sep)
  return parts.length === 1 ? parts[0].replace(/\.(ts|js)$/, '') : parts[0]
}

/** The table between the page's import markers: from -> what it may import. */
function allowedImports (): Map<string, Set<string>> {
  const table = /<!-- imports: start -->([\s\S]*?)<!-- imports: end -->/.exec(PAGE)?.[1] ?? ''
  const rows = table.split('\n').filter((line) => line.startsWith('| ') && !line.startsWith('| from') && !line.startsWith('| ---'))
  return new Map(rows.map((row) => {
    const [from, allowed] = row.split('|').slice(1, 3).map((cell) => cell.trim())
    return [from, new Set(allowed === '' ? [] : allowed.split(', '))]
  }))
}

t.test('every import in src/ follows docs/architecture.md', async (t) => {
  const allowed = allowedImports()
  t.ok(allowed.size > 10, 'the page has its import table')
  const sources = files(SRC)
  t.ok(sources.length > 50, `read ${sources.length} source files`)
  const crossings: string[] = []
  for (const file of sources) {
    const from = area(file)
    const source = readFileSync(file, 'utf8')
    for (const match of source.matchAll(/(?:from|import\() *'([^']+)'/g)) {
      const specifier = match[1]
      const where = `${path.relative(SRC, file)} imports ${specifier}`
      if (!specifier.startsWith('.')) {
        if (DOMAIN.has(from) && /^(fastify|fastify-plugin|ioredis)$/.test(specifier)) crossings.push(`${where}: domain code uses neither Fastify nor Redis`)
        continue
      }
      const target = path.join(path.dirname(file), specifier)
      const to = area(target)
      if (to === from || to === 'config') continue
      const exact = path.relative(SRC, target).replace(/\.ts$/, '')
      if (!(allowed.get(from)?.has(to) === true || allowed.get(from)?.has(exact) === true)) crossings.push(where)
    }
  }
  t.same(crossings, [], 'no import crosses a line the table does not draw')
})
