import t from 'tap'
import { readFile } from 'node:fs/promises'
import { startService, tempDir } from './helper.ts'
import { freePort } from './redis-server.ts'

// Process concerns of src/server.ts that only a running process shows.

t.test('METRICS_HOST: the metrics listener binds there, the API stays on HOST; unset, it follows HOST', async (t) => {
  // Two loopback addresses stand for a public interface (HOST) and the machine itself (127.0.0.1).
  const status = async (url: string) => await fetch(url).then((r) => r.status, () => 'refused')
  const start = async (env: Record<string, string>) => {
    const [port, metricsPort] = [await freePort(), await freePort()]
    await startService(t, { DATA_DIR: await tempDir(t), LOG_LEVEL: 'warn', PORT: String(port), METRICS_PORT: String(metricsPort), HOST: '127.0.0.2', ...env })
    return { port, metricsPort }
  }
  const [apart, following] = await Promise.all([start({ METRICS_HOST: '127.0.0.1' }), start({})])

  t.equal(await status(`http://127.0.0.1:${apart.metricsPort}/metrics`), 200, 'metrics on METRICS_HOST')
  t.equal(await status(`http://127.0.0.2:${apart.metricsPort}/metrics`), 'refused', 'not on HOST')
  t.equal(await status(`http://127.0.0.1:${apart.port}/health/live`), 'refused', 'the API is not on METRICS_HOST')
  t.equal(await status(`http://127.0.0.2:${following.metricsPort}/metrics`), 200, 'unset: metrics on HOST')
  t.equal(await status(`http://127.0.0.1:${following.metricsPort}/metrics`), 'refused', 'and only there')
})

t.test('ADMIN_PORT: the admin API on its own listener (on ADMIN_HOST, else HOST), never on the public port; off unless set', async (t) => {
  const status = async (url: string) => await fetch(url).then((r) => r.status, () => 'refused')
  const [port, adminPort, otherPort] = [await freePort(), await freePort(), await freePort()]
  await startService(t, { DATA_DIR: await tempDir(t), LOG_LEVEL: 'warn', PORT: String(port), METRICS_PORT: '0', ADMIN_PORT: String(adminPort), HOST: '127.0.0.2', ADMIN_HOST: '127.0.0.1' })
  t.equal(await status(`http://127.0.0.1:${adminPort}/admin/v1/clients`), 401, 'the admin API on ADMIN_HOST, asking for a token')
  t.equal(await status(`http://127.0.0.2:${adminPort}/admin/v1/clients`), 'refused', 'not on HOST')
  t.equal(await status(`http://127.0.0.2:${port}/admin/v1/clients`), 404, 'nor on the public port')
  await startService(t, { DATA_DIR: await tempDir(t), LOG_LEVEL: 'warn', PORT: String(otherPort), METRICS_PORT: '0', HOST: '127.0.0.2' })
  t.equal(await status(`http://127.0.0.2:${otherPort}/admin/v1/clients`), 404, 'unset: no admin API anywhere')
})

t.test('started without MALLOC_ARENA_MAX, the service restarts itself in place with one malloc arena and 8 MiB semi-spaces; with it, as it is', async (t) => {
  /** The environment and command line the kernel shows for the process (Linux). */
  const proc = async (pid: number) => ({
    environ: (await readFile(`/proc/${pid}/environ`, 'utf8')).split('\0'),
    cmdline: (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0')
  })
  const bare = await startService(t, { DATA_DIR: await tempDir(t), LOG_LEVEL: 'warn', PORT: String(await freePort()), METRICS_PORT: '0', HOST: '127.0.0.1', MALLOC_ARENA_MAX: '' })
  const restarted = await proc(bare.pid!)
  t.ok(restarted.environ.includes('MALLOC_ARENA_MAX=1'), 'the same PID now runs with one arena')
  t.ok(restarted.cmdline.includes('--max-semi-space-size=8'), 'and 8 MiB semi-spaces')

  const chosen = await startService(t, { DATA_DIR: await tempDir(t), LOG_LEVEL: 'warn', PORT: String(await freePort()), METRICS_PORT: '0', HOST: '127.0.0.1', MALLOC_ARENA_MAX: '2' })
  const asStarted = await proc(chosen.pid!)
  t.ok(asStarted.environ.includes('MALLOC_ARENA_MAX=2'), 'an operator\'s choice stands')
  t.notOk(asStarted.cmdline.some((argument) => argument.startsWith('--max-semi-space-size')), 'and nothing is restarted')
})

t.test('before it listens, the service compacts its heap: V8\'s young generation starts small, not at the size start-up grew it to', async (t) => {
  const metricsPort = await freePort()
  const service = await startService(t, { DATA_DIR: await tempDir(t), LOG_LEVEL: 'info', PORT: String(await freePort()), METRICS_PORT: String(metricsPort), HOST: '127.0.0.1', NODE_OPTIONS: '--max-semi-space-size=8' })
  const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text()
  const youngMiB = Number(/^nodejs_heap_space_size_total_bytes\{space="new"\} (\d+)/m.exec(metrics)?.[1]) / 2 ** 20
  // Uncompacted, loading the service leaves both 8 MiB semi-spaces at full size: 16 MiB.
  t.ok(youngMiB < 8, `young generation ${youngMiB.toFixed(1)} MiB just after start`)
  const line = service.output().split('\n').find((candidate) => candidate.includes('heap compacted before listening'))
  t.ok(line !== undefined && Number.isInteger(JSON.parse(line).durationMs), 'and the log says how long it took')
})
