import { readFile, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import t from 'tap'
import { generateOpenApiDocuments } from '../../src/cli/openapi-document.ts'
import { PASSWORD, addUser, buildTestApp, runScript, tempDir } from '../helper.ts'
import { addClient } from '../routes/oauth2/helper.ts'

const COMMITTED_DOCUMENT = 'openapi/openapi.json'

t.test('the committed OpenAPI document is what the route schemas generate', async (t) => {
  const committed = await readFile(COMMITTED_DOCUMENT, 'utf8')
  t.equal((await generateOpenApiDocuments())[COMMITTED_DOCUMENT], committed, 'openapi/openapi.json is stale: run `npm run openapi` and commit it')
})

t.test('the document names its schemas and documents every status', async (t) => {
  const document = JSON.parse(await readFile(COMMITTED_DOCUMENT, 'utf8'))
  t.equal(document.openapi, '3.1.0')
  t.ok(document.components.schemas.LoginRequest && document.components.schemas.LoginResponse && document.components.schemas.ErrorResponse)
  const operation = document.paths['/api/auth/login'].post
  t.equal(operation.operationId, 'login')
  t.same(Object.keys(operation.responses).sort(), ['200', '400', '401', '413', '415', '429', '500', '503'])
  t.same(document.components.schemas.LoginRequest.examples, [{ username: 'john.doe', password: 'securePassword123' }])
})

t.test('a client generated from the committed document logs in against a running service', async (t) => {
  const dir = await tempDir(t, 'auth-client-')
  const typesFile = path.join(dir, 'api.d.ts')
  const generated = await promisify(execFile)(process.execPath, ['node_modules/openapi-typescript/bin/cli.js', COMMITTED_DOCUMENT, '-o', typesFile])
  t.match(generated.stderr + generated.stdout, /api\.d\.ts/)

  // A consumer's code against the generated types: it must type-check and then work for real.
  const clientFile = path.join(process.cwd(), 'test', `.generated-client-${process.pid}.ts`)
  t.teardown(() => import('node:fs/promises').then(({ rm }) => rm(clientFile, { force: true })))
  await writeFile(clientFile, `
import createClient from 'openapi-fetch'
import type { paths } from '${typesFile.replace(/\.d\.ts$/, '.js')}'

const client = createClient<paths>({ baseUrl: process.argv[2] })
const { data, error, response } = await client.POST('/api/auth/login', {
  body: { username: process.argv[3], password: process.argv[4] }
})
if (error !== undefined) throw new Error('login failed: ' + response.status + ' ' + error.message)
const token: string = data.data.accessToken
const expires: number = data.data.expireDate
console.log(JSON.stringify({ status: response.status, tokenType: data.data.tokenType, username: data.data.username, token, expires }))
const failed = await client.POST('/api/auth/login', { body: { username: process.argv[3], password: 'wrong password!' } })
console.log(JSON.stringify({ status: failed.response.status, message: failed.error?.message }))
const me = await client.GET('/api/auth/me', { headers: { authorization: 'Bearer ' + token } })
const caller: string | undefined = me.data?.data.username
console.log(JSON.stringify({ status: me.response.status, username: caller }))
const granted = await client.POST('/oauth2/token', {
  body: { grant_type: 'client_credentials', scope: 'orders:read' },
  bodySerializer: (body) => new URLSearchParams(body as Record<string, string>).toString(),
  headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: 'Basic ' + Buffer.from(process.argv[5] + ':' + process.argv[6]).toString('base64') }
})
const accessToken: string | undefined = granted.data?.access_token
console.log(JSON.stringify({ status: granted.response.status, tokenType: granted.data?.token_type, scope: granted.data?.scope, accessToken }))
const refused = await client.POST('/oauth2/token', {
  body: { grant_type: 'client_credentials' },
  bodySerializer: (body) => new URLSearchParams(body as Record<string, string>).toString(),
  headers: { 'content-type': 'application/x-www-form-urlencoded' }
})
console.log(JSON.stringify({ status: refused.response.status, error: refused.error?.error }))
`)

  const app = await buildTestApp(t)
  await addUser(app, 'john.doe', PASSWORD)
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as { port: number }

  const secret = await addClient(app, { clientId: 'billing', scopes: ['orders:read'], audiences: ['https://orders.internal'] })

  const result = await runScript(clientFile, [`http://127.0.0.1:${port}`, 'john.doe', PASSWORD, 'billing', secret])
  t.equal(result.code, 0, result.stderr)
  const [success, failure, caller, granted, refused] = result.stdout.trim().split('\n').map((line) => JSON.parse(line))
  t.match(success, { status: 200, tokenType: 'Bearer', username: 'john.doe' })
  t.equal((await app.accessTokens.verify(success.token, 'user')).sub, 'john.doe')
  t.same(failure, { status: 401, message: 'Username or password is incorrect' })
  t.same(caller, { status: 200, username: 'john.doe' }, '/me with the token from login')
  t.match(granted, { status: 200, tokenType: 'Bearer', scope: 'orders:read' }, 'a token through /oauth2/token')
  t.equal((await app.accessTokens.verify(granted.accessToken, 'client')).client_id, 'billing')
  t.same(refused, { status: 401, error: 'invalid_client' }, 'the RFC 6749 error body, typed')
})

t.test('DOCS_ENABLED=false removes /docs and its assets; the document is still generated', async (t) => {
  const withDocs = await buildTestApp(t)
  t.equal((await withDocs.inject({ method: 'GET', url: '/docs/json' })).statusCode, 200, 'on by default')
  t.equal((await withDocs.inject({ method: 'GET', url: '/docs/static/swagger-ui.css' })).statusCode, 200)

  const app = await buildTestApp(t, { DOCS_ENABLED: 'false' })
  for (const url of ['/docs', '/docs/', '/docs/json', '/docs/yaml', '/docs/static/index.html', '/docs/static/swagger-ui.css']) {
    const response = await app.inject({ method: 'GET', url })
    t.equal(response.statusCode, 404, url)
    t.same(response.json(), { message: `Route GET ${url} not found` }, `${url}: the service's own 404`)
  }
  t.equal(JSON.stringify(app.swagger(), null, 2) + '\n', await readFile(COMMITTED_DOCUMENT, 'utf8'), 'the same OpenAPI document without the UI')
})
