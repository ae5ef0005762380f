import t, { type Test } from 'tap'
import { MANAGED_BY_CLIENTS_FILE, type Client } from '../../src/clients/client.ts'
import { fileDigest } from '../../src/clients/clients-file.ts'
import { generateSecret } from '../../src/clients/secrets.ts'
import { behaviourTopologies, redisModeOn } from '../redis-topologies.ts'
import { addClient, basic, postForm } from '../routes/oauth2/helper.ts'
import { adminService, adminToken, call, type AdminService } from './helper.ts'

const MODES: Record<string, (t: Test) => Promise<AdminService>> = {
  embedded: async (t) => await adminService(t),
  ...Object.fromEntries(behaviourTopologies().map((name) => [`redis ${name}`, async (t: Test) => await adminService(t, (await redisModeOn(name)).env)]))
}

const ORDERS = { id: 'orders', scopes: ['orders:read', 'orders:write'], audiences: ['https://orders.internal'], ttlSeconds: 600 }

for (const [mode, start] of Object.entries(MODES)) {
  t.test(`${mode}: clients through the admin API`, async (t) => {
    const service = await start(t)
    const { app, issuer, adminUrl } = service
    const { token, clientId: actor } = await adminToken(service, ['admin:clients:read', 'admin:clients:write'])
    const grant = async (clientId: string, secret: string) => await postForm(`${issuer}/oauth2/token`, { grant_type: 'client_credentials' }, { authorization: basic(clientId, secret) })

    t.test('a secret client: its secret once, in the creating response, and never again', async (t) => {
      const created = await call(`${adminUrl}/clients`, 'POST', token, ORDERS)
      t.equal(created.status, 201)
      t.equal(created.headers.get('location'), '/admin/v1/clients/orders')
      t.equal(created.headers.get('cache-control'), 'no-store')
      t.match(created.body, { ...ORDERS, secretDigests: [/^sha256:[0-9a-f]{64}$/] })
      const { secret } = created.body
      t.match(secret, /^[A-Za-z0-9_-]{43}$/)
      t.equal(created.body.secretDigests[0], fileDigest(secret), 'the digest is the clients file\'s sha256:<hex> of the secret')
      t.equal((await grant('orders', secret)).status, 200, 'the secret works at /oauth2/token')

      const read = await call(`${adminUrl}/clients/orders`, 'GET', token)
      t.equal(read.status, 200)
      t.equal(read.headers.get('etag'), created.headers.get('etag'))
      t.notOk('secret' in read.body, 'GET shows no secret')
      const listed = await call(`${adminUrl}/clients`, 'GET', token)
      t.notOk(JSON.stringify(listed.body).includes(secret), 'nor does the list')
      t.equal((await call(`${adminUrl}/clients`, 'POST', token, ORDERS)).status, 409, 'an id is registered once')
      t.equal((await call(`${adminUrl}/clients/nobody`, 'GET', token)).status, 404)
    })

    t.test('private_key_jwt, workload identity and a declared digest: no secret generated', async (t) => {
      const secret = generateSecret()
      for (const body of [
        { id: 'billing', scopes: ['billing:write'], audiences: ['https://billing.internal'], jwksUri: 'https://billing.internal/jwks.json' },
        { id: 'ledger', scopes: ['ledger:read'], audiences: ['https://ledger.internal'], federated: { issuer: 'https://k8s.internal', subject: 'system:serviceaccount:ledger:ledger', jwksUri: 'https://k8s.internal/jwks' } },
        { id: 'declared', scopes: ['ledger:read'], audiences: ['https://ledger.internal'], secretDigests: [fileDigest(secret)] }
      ]) {
        const created = await call(`${adminUrl}/clients`, 'POST', token, body)
        t.equal(created.status, 201, body.id)
        t.notOk('secret' in created.body, body.id)
        t.match(created.body, body)
      }
      t.equal((await grant('declared', secret)).status, 200, 'the secret of a declared digest works')
    })

    t.test('bodies are the clients file\'s: unknown fields, plaintext secrets and broken rules are refused', async (t) => {
      for (const [body, message] of [
        [{ ...ORDERS, id: 'x1', secret: 'plaintext' }, /must NOT have additional properties/],
        [{ ...ORDERS, id: 'x2', clientSecret: 'plaintext' }, /must NOT have additional properties/],
        [{ ...ORDERS, id: 'x3', scopes: [] }, /scopes/],
        [{ ...ORDERS, id: 'x4', jwksUri: 'https://a.internal/jwks', federated: { issuer: 'i', subject: 's', jwksUri: 'https://b.internal/jwks' } }, /exactly one way/],
        [{ ...ORDERS, id: 'bad id' }, /id/]
      ] as const) {
        const refused = await call(`${adminUrl}/clients`, 'POST', token, body)
        t.equal(refused.status, 400, JSON.stringify(body))
        t.match(refused.body.message, message)
      }
      const notJson = await fetch(`${adminUrl}/clients`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'text/plain' }, body: 'id: x' })
      t.equal(notJson.status, 415)
    })

    t.test('replace needs If-Match: 428 without, 412 on a stale tag, a new ETag on every change', async (t) => {
      const read = await call(`${adminUrl}/clients/orders`, 'GET', token)
      const tag = read.headers.get('etag')!
      const wanted = { ...ORDERS, scopes: ['orders:read'], secretDigests: read.body.secretDigests }
      t.equal((await call(`${adminUrl}/clients/orders`, 'PUT', token, wanted)).status, 428)
      t.equal((await call(`${adminUrl}/clients/orders`, 'PUT', token, wanted, { 'if-match': '"stale"' })).status, 412)
      t.equal((await call(`${adminUrl}/clients/orders`, 'PUT', token, { ...wanted, id: 'other' }, { 'if-match': tag })).status, 400, 'the body\'s id is the path\'s')
      const replaced = await call(`${adminUrl}/clients/orders`, 'PUT', token, wanted, { 'if-match': tag })
      t.equal(replaced.status, 200)
      t.same(replaced.body.scopes, ['orders:read'])
      t.equal(replaced.body.createdAt, read.body.createdAt, 'still the same registration: its tokens stay valid')
      t.not(replaced.headers.get('etag'), tag)
      t.equal((await call(`${adminUrl}/clients/orders`, 'PUT', token, wanted, { 'if-match': tag })).status, 412, 'the old tag is stale now')
      t.equal((await call(`${adminUrl}/clients/orders`, 'GET', token)).headers.get('etag'), replaced.headers.get('etag'))
    })

    t.test('two admins replacing one client with the same tag: one wins, the other gets 412', async (t) => {
      const read = await call(`${adminUrl}/clients/orders`, 'GET', token)
      const tag = read.headers.get('etag')!
      const answers = await Promise.all(['orders:audit', 'orders:export'].map((scope) =>
        call(`${adminUrl}/clients/orders`, 'PUT', token, { ...ORDERS, scopes: [scope], secretDigests: read.body.secretDigests }, { 'if-match': tag })))
      t.same(answers.map((answer) => answer.status).sort(), [200, 412])
      const winner = answers.find((answer) => answer.status === 200)!
      t.same((await call(`${adminUrl}/clients/orders`, 'GET', token)).body.scopes, winner.body.scopes, 'what is stored is the winner\'s, whole')
    })

    t.test('rotate keeps the old secret for the given time, retire ends it; each new secret shown once', async (t) => {
      const created = await call(`${adminUrl}/clients`, 'POST', token, { ...ORDERS, id: 'rotating' })
      const old = created.body.secret
      t.equal((await call(`${adminUrl}/clients/rotating/rotate-secret`, 'POST', token, {}, { 'if-match': '"stale"' })).status, 412, 'If-Match is honoured when sent')
      const rotated = await call(`${adminUrl}/clients/rotating/rotate-secret`, 'POST', token, { oldSecretExpiresInSeconds: 3600 })
      t.equal(rotated.status, 200)
      t.not(rotated.body.secret, old)
      t.equal(rotated.body.secretDigests.length, 2)
      t.equal((await grant('rotating', old)).status, 200, 'the old secret still works')
      t.equal((await grant('rotating', rotated.body.secret)).status, 200, 'and the new one')
      t.equal((await call(`${adminUrl}/clients/rotating/rotate-secret`, 'POST', token, {})).status, 409, 'one rotation at a time')
      const read = await call(`${adminUrl}/clients/rotating`, 'GET', token)
      t.notOk(JSON.stringify(read.body).includes(rotated.body.secret))
      const retired = await call(`${adminUrl}/clients/rotating/retire-secret`, 'POST', token)
      t.equal(retired.status, 200)
      t.equal(retired.body.secretDigests.length, 1)
      t.equal((await grant('rotating', old)).status, 401, 'the old secret no longer works')
      t.equal((await grant('rotating', rotated.body.secret)).status, 200)
      t.equal((await call(`${adminUrl}/clients/rotating/retire-secret`, 'POST', token)).status, 409, 'nothing left to retire')
      t.equal((await call(`${adminUrl}/clients/billing/rotate-secret`, 'POST', token, {})).status, 409, 'a private_key_jwt client has no secret to rotate')
    })

    t.test('delete needs If-Match; the client\'s tokens end with it', async (t) => {
      const created = await call(`${adminUrl}/clients`, 'POST', token, { ...ORDERS, id: 'doomed' })
      const clientToken = (await grant('doomed', created.body.secret)).body.access_token
      t.equal((await call(`${adminUrl}/clients/doomed`, 'DELETE', token)).status, 428)
      t.equal((await call(`${adminUrl}/clients/doomed`, 'DELETE', token, undefined, { 'if-match': '"stale"' })).status, 412)
      const removed = await call(`${adminUrl}/clients/doomed`, 'DELETE', token, undefined, { 'if-match': created.headers.get('etag')! })
      t.equal(removed.status, 204)
      t.equal((await call(`${adminUrl}/clients/doomed`, 'GET', token)).status, 404)
      await t.rejects(app.accessTokens.verify(clientToken, 'client'), /revoked/)
    })

    t.test('a client the clients file manages: 409 on every change', async (t) => {
      await addClient(app, { clientId: 'managed', managedBy: MANAGED_BY_CLIENTS_FILE })
      const read = await call(`${adminUrl}/clients/managed`, 'GET', token)
      t.equal(read.body.managedBy, 'clients-file')
      const tag = { 'if-match': read.headers.get('etag')! }
      for (const [method, path, body] of [
        ['PUT', '/clients/managed', { ...ORDERS, id: 'managed', secretDigests: read.body.secretDigests }],
        ['DELETE', '/clients/managed', undefined],
        ['POST', '/clients/managed/rotate-secret', {}],
        ['POST', '/clients/managed/retire-secret', undefined]
      ] as const) {
        const refused = await call(`${adminUrl}${path}`, method, token, body, tag)
        t.equal(refused.status, 409, `${method} ${path}`)
        t.match(refused.body.message, /managed by the clients file/)
      }
      t.same(await app.clients.find('managed'), await app.clients.find('managed'), 'unchanged')
    })

    t.test('every change has one audit line naming the actor, the resource and the fields; no secret in any line', async (t) => {
      const audits = service.logLines().filter((line) => line.audit === 'admin')
      t.ok(audits.every((line) => line.actor === actor && line.resource === 'clients'))
      const summary = audits.map((line) => `${line.operation} ${line.target}${line.fields !== undefined ? ` ${line.fields.join(',')}` : ''}`)
      t.same(summary, [
        'create orders id,scopes,audiences,ttlSeconds',
        'create billing id,scopes,audiences,jwksUri',
        'create ledger id,scopes,audiences,federated',
        'create declared id,scopes,audiences,secretDigests',
        'replace orders scopes',
        'replace orders scopes',
        'create rotating id,scopes,audiences,ttlSeconds',
        'rotate_secret rotating secretDigests',
        'retire_secret rotating secretDigests',
        'create doomed id,scopes,audiences,ttlSeconds',
        'delete doomed'
      ])
      const text = service.logText()
      const stored = await app.clients.list()
      const digests = stored.flatMap((client: Client) => client.secrets ?? []).map((secret) => secret.digest)
      t.ok(digests.length > 3)
      for (const digest of digests) {
        t.notOk(text.includes(digest), 'no stored digest in any line')
        t.notOk(text.includes(Buffer.from(digest, 'base64url').toString('hex')), 'nor its hex form')
      }
      t.notOk(text.includes(token), 'nor the bearer token')
      t.notOk(/"secret"/.test(text), 'nor any secret field')
    })
  })

  t.test(`${mode}: listing pages through 10,000 clients, each once`, async (t) => {
    const service = await start(t)
    const { app, adminUrl } = service
    const { token, clientId: caller } = await adminToken(service, ['admin:clients:read'])
    // Seeded through the store, in one batched write, as a clients-file apply would.
    const many: Client[] = Array.from({ length: 10_000 }, (_, i) => ({ clientId: `client-${String(i).padStart(5, '0')}`, scopes: ['x'], audiences: ['https://x.internal'], jwksUri: 'https://x.internal/jwks', createdAt: 1000, updatedAt: 1000 }))
    await app.clients.reconcile(() => ({ writes: { put: many, remove: [] } }))
    const seen: string[] = []
    let pages = 0
    let cursor: string | undefined
    do {
      const page = await call(`${adminUrl}/clients?limit=500${cursor !== undefined ? `&cursor=${encodeURIComponent(cursor)}` : ''}`, 'GET', token)
      t.equal(page.status, 200)
      seen.push(...page.body.clients.map((client: { id: string }) => client.id))
      cursor = page.body.next
      pages++
      // A client added and one removed while paging: the one removed is not seen again, the rest stay in order.
      if (pages === 3) {
        await app.clients.remove('client-09999')
        await app.clients.remove('client-00000')
      }
    } while (cursor !== undefined)
    const expected = [...many.map((client) => client.clientId), caller].filter((id) => id !== 'client-09999').sort()
    t.same(seen, expected, 'every client once, in id order')
    t.ok(pages >= 20 && pages <= 21, `${pages} pages`)
    t.equal((await call(`${adminUrl}/clients`, 'GET', token)).body.clients.length, 100, 'a page is 100 clients unless told')
    for (const limit of ['0', '501', 'ten', '-1']) t.equal((await call(`${adminUrl}/clients?limit=${limit}`, 'GET', token)).status, 400, `limit=${limit}`)
  })
}
