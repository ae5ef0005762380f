import { mkdir, rename, symlink, writeFile } from 'node:fs/promises'
import path from 'node:path'
import t, { type Test } from 'tap'
import { fileDigest } from '../../src/clients/clients-file.ts'
import { loadConfig, type Config } from '../../src/config.ts'
import { withStores } from '../../src/storage/stores.ts'
import { startService, tempDir } from '../helper.ts'
import { freePort } from '../redis-server.ts'
import { behaviourTopologies, redisModeOn, waitUntil } from '../redis-topologies.ts'
import { basic, FORM } from '../routes/oauth2/helper.ts'

/**
 * A directory laid out as Kubernetes mounts a ConfigMap: `clients.yaml` links to `..data/clients.yaml`,
 * `..data` links to a timestamped directory, and an update writes a new directory and swaps `..data`.
 */
async function configMapVolume (t: Test): Promise<{ file: string, update: (text: string) => Promise<void> }> {
  const dir = await tempDir(t)
  let version = 0
  const update = async (text: string) => {
    const target = `..${++version}`
    await mkdir(path.join(dir, target))
    await writeFile(path.join(dir, target, 'clients.yaml'), text)
    await symlink(target, path.join(dir, '..data_tmp'))
    await rename(path.join(dir, '..data_tmp'), path.join(dir, '..data'))
  }
  await update('clients: []\n')
  await symlink('..data/clients.yaml', path.join(dir, 'clients.yaml'))
  return { file: path.join(dir, 'clients.yaml'), update }
}

const SECRET = 'a-secret-only-the-caller-has-0123456789abcdef'
const clientYaml = (scopes: string[]) => `clients:
  - id: orders
    scopes: [${scopes.join(', ')}]
    audiences: [https://orders.internal]
    secretDigests: [${fileDigest(SECRET)}]
`

const storedScopes = async (config: Config) => await withStores(config, async ({ durable: { clients } }) => (await clients.find('orders'))?.scopes)

/** The JSON log lines a replica printed that are about the clients file. */
const reconciliations = (output: string) => output.split('\n').filter((line) => line.includes('"clientsFile"')).map((line) => JSON.parse(line))

for (const mode of ['embedded', ...behaviourTopologies()] as const) {
  const replicas = mode === 'embedded' ? 1 : 2
  t.test(`${mode}: ${replicas} running replica(s) apply the file at start and pick up each change within seconds`, async (t) => {
    const env = mode === 'embedded' ? { DATA_DIR: await tempDir(t) } : { ...(await redisModeOn(mode)).env, DATA_DIR: await tempDir(t) }
    const config = loadConfig(env)
    const volume = await configMapVolume(t)
    await volume.update(clientYaml(['orders:read']))
    const services = await Promise.all(Array.from({ length: replicas }, async () => {
      const port = await freePort()
      const metricsPort = await freePort()
      const service = await startService(t, { ...env, PORT: String(port), METRICS_PORT: String(metricsPort), CLIENTS_FILE: volume.file })
      return { service, port, metricsPort }
    }))
    const logged = (version: (line: any) => boolean) => services.map(({ service }) => reconciliations(service.output()).filter(version))

    await waitUntil('the file applied at start', async () => (await storedScopes(config))?.join(' ') === 'orders:read', 10_000)
    await waitUntil('every replica reconciled', async () => logged(() => true).every((lines) => lines.length > 0), 10_000)
    const token = await fetch(`http://127.0.0.1:${services[0].port}/oauth2/token`, { method: 'POST', headers: { ...FORM, authorization: basic('orders', SECRET) }, body: 'grant_type=client_credentials' })
    t.equal(token.status, 200, 'the declared digest admits the secret')

    await volume.update(clientYaml(['orders:read', 'orders:write']))
    const changedAt = Date.now()
    await waitUntil('the change in the store', async () => (await storedScopes(config))?.join(' ') === 'orders:read orders:write', 10_000)
    t.ok(Date.now() - changedAt < 6000, `picked up in ${Date.now() - changedAt} ms`)
    const version = (line: any) => line.msg.startsWith('clients file applied') && line.changed?.some((change: any) => change.fields.includes('scopes'))
    await waitUntil('every replica saw the new version', async () => {
      const versions = services.map(({ service }) => reconciliations(service.output()).at(-1)?.version)
      return versions.every((seen) => seen !== undefined && seen === versions[0]) && logged(version).flat().length > 0
    }, 10_000)
    t.equal(logged(version).flat().length, 1, 'one replica applied the change; the others found nothing to change')
    t.match(logged(version).flat()[0], { created: [], changed: [{ clientId: 'orders', fields: ['scopes'] }], removed: [] })

    // A file that stops parsing: one line naming the error, a count, the last good state, still ready.
    await volume.update(clientYaml(['orders:read']).replace('scopes:', 'scope:') + '    secret: plaintext-never-logged\n')
    const invalid = (line: any) => line.level === 50 && line.msg.includes('clients file not applied')
    await waitUntil('every replica refused it', async () => logged(invalid).every((lines) => lines.length === 1), 10_000)
    for (const [index, lines] of logged(invalid).entries()) {
      t.match(lines[0].msg, /clients\.yaml:6:5: clients\[0\]\.secret: a plaintext secret never goes in the clients file/, `replica ${index}`)
      const metrics = await (await fetch(`http://127.0.0.1:${services[index].metricsPort}/metrics`)).text()
      t.match(metrics, /^auth_clients_file_reconciliations_total\{outcome="invalid"\} 1$/m)
      t.equal((await fetch(`http://127.0.0.1:${services[index].port}/health/ready`)).status, 200, 'readiness is unaffected')
      t.notOk(services[index].service.output().includes('plaintext-never-logged'), 'the secret is in no log line')
    }
    t.same(await storedScopes(config), ['orders:read', 'orders:write'], 'the last good state stays')

    // Removed from the file: removed from the store (what the file manages, nothing else).
    await withStores(config, async ({ durable: { clients } }) => {
      await clients.create({ clientId: 'by-hand', scopes: ['a'], audiences: ['b'], jwksUri: 'https://keys.example.com/jwks.json', createdAt: 0, updatedAt: 0 })
    })
    await volume.update('clients: []\n')
    await waitUntil('orders removed', async () => (await storedScopes(config)) === undefined, 10_000)
    t.ok(await withStores(config, async ({ durable: { clients } }) => await clients.find('by-hand')), 'a client the CLI made stays')
  })
}
