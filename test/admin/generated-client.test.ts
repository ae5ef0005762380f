import { execFile } from 'node:child_process'
import { readFile, rm, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { promisify } from 'node:util'
import t from 'tap'
import { generateOpenApiDocuments } from '../../src/cli/openapi-document.ts'
import { runScript, tempDir } from '../helper.ts'
import { adminService, adminToken } from './helper.ts'

const COMMITTED_DOCUMENT = 'openapi/admin.json'

t.test('the committed admin OpenAPI document is what the admin route schemas generate', async (t) => {
  t.equal((await generateOpenApiDocuments())[COMMITTED_DOCUMENT], await readFile(COMMITTED_DOCUMENT, 'utf8'), 'openapi/admin.json is stale: run `npm run openapi` and commit it')
})

t.test('every admin operation states the scope it needs, and the clients\' bodies are the clients file\'s fields', async (t) => {
  const document = JSON.parse(await readFile(COMMITTED_DOCUMENT, 'utf8'))
  const operations = Object.values(document.paths).flatMap((path: any) => Object.values(path)) as any[]
  t.equal(operations.length, 16)
  for (const operation of operations) t.match(operation.security, [{ adminToken: [/^admin:(clients|users|keys):(read|write)$/] }], operation.operationId)
  const { properties } = JSON.parse(await readFile('schemas/clients-file.schema.json', 'utf8')).properties.clients.items
  t.same(Object.keys(document.components.schemas.ClientRequest.properties), Object.keys(properties))
})

t.test('a TypeScript client generated from the committed document manages clients against a real admin listener', async (t) => {
  const dir = await tempDir(t, 'auth-admin-client-')
  const typesFile = path.join(dir, 'admin.d.ts')
  await promisify(execFile)(process.execPath, ['node_modules/openapi-typescript/bin/cli.js', COMMITTED_DOCUMENT, '-o', typesFile])

  // A pipeline's code against the generated types: it must type-check and then work for real.
  const programFile = path.join(process.cwd(), 'test', `.generated-admin-client-${process.pid}.ts`)
  t.teardown(() => rm(programFile, { force: true }))
  await writeFile(programFile, `
import createClient from 'openapi-fetch'
import type { paths } from '${typesFile.replace(/\.d\.ts$/, '.js')}'

const admin = createClient<paths>({ baseUrl: process.argv[2], headers: { authorization: 'Bearer ' + process.argv[3] } })
const created = await admin.POST('/admin/v1/clients', { body: { id: 'orders', scopes: ['orders:read'], audiences: ['https://orders.internal'] } })
if (created.data === undefined) throw new Error('create failed: ' + created.response.status)
const secret: string | undefined = created.data.secret
const read = await admin.GET('/admin/v1/clients/{id}', { params: { path: { id: 'orders' } } })
const etag = read.response.headers.get('etag') ?? ''
const replaced = await admin.PUT('/admin/v1/clients/{id}', {
  params: { path: { id: 'orders' }, header: { 'if-match': etag } },
  body: { id: 'orders', scopes: ['orders:read', 'orders:write'], audiences: ['https://orders.internal'], secretDigests: read.data?.secretDigests }
})
const stale = await admin.PUT('/admin/v1/clients/{id}', {
  params: { path: { id: 'orders' }, header: { 'if-match': etag } },
  body: { id: 'orders', scopes: ['orders:read'], audiences: ['https://orders.internal'], secretDigests: read.data?.secretDigests }
})
const page = await admin.GET('/admin/v1/clients', { params: { query: { limit: '10' } } })
const ids: string[] = page.data?.clients.map((client) => client.id) ?? []
const keys = await admin.GET('/admin/v1/keys')
console.log(JSON.stringify({ created: created.response.status, hasSecret: typeof secret === 'string', readHasSecret: read.data !== undefined && 'secret' in read.data, replaced: replaced.data?.scopes, stale: [stale.response.status, stale.error?.message], ids, keys: keys.error?.message }))
`)

  const service = await adminService(t)
  const { token, clientId } = await adminToken(service, ['admin:clients:read', 'admin:clients:write'])
  const result = await runScript(programFile, [service.adminUrl.replace(/\/admin\/v1$/, ''), token])
  t.equal(result.code, 0, result.stderr)
  t.same(JSON.parse(result.stdout.trim()), {
    created: 201,
    hasSecret: true,
    readHasSecret: false,
    replaced: ['orders:read', 'orders:write'],
    stale: [412, 'The record has changed since it was read (If-Match does not match its ETag): read it again'],
    ids: [clientId, 'orders'],
    keys: 'The token lacks the scope admin:keys:read'
  })
})

t.test('the committed admin document is lint-clean, as npm run lint:openapi checks it', async (t) => {
  const { stdout } = await promisify(execFile)(process.execPath, ['scripts/lint-openapi.mjs', COMMITTED_DOCUMENT])
  t.match(stdout, /redocly lint \(recommended\): 0 errors, 0 warnings, 0 ignored/)
  t.match(stdout, /spectral lint \(spectral:oas\): no problems/)
})
