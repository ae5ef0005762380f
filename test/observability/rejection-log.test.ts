import { Writable } from 'node:stream'
import { setTimeout as sleep } from 'node:timers/promises'
import t, { type Test } from 'tap'
import { buildApp } from '../../src/app.ts'
import { REJECTION_LOG_LIMITS, RejectionLog, type RejectionSummary } from '../../src/observability/rejection-log.ts'
import { testConfig } from '../helper.ts'

/** The app at LOG_LEVEL info with its log lines collected. */
async function appWithLog (t: Test, env: Record<string, string>) {
  const lines: Array<Record<string, unknown>> = []
  const stream = new Writable({
    write (chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n')) if (line !== '') lines.push(JSON.parse(line))
      done()
    }
  })
  const app = await buildApp(await testConfig(t, env), { level: 'info', stream })
  await app.ready()
  return { app, lines }
}

t.test('a flood of rejected logins from one address: the first lines as usual, the rest summed into one line; metrics count each', async (t) => {
  const { app, lines } = await appWithLog(t, { RATE_LIMIT_MAX: '2' })
  let closed = false
  t.teardown(async () => { if (!closed) await app.close() })
  // Malformed bodies (400, no hashing) for the 2 attempts the limit allows, then 198 rate-limited ones.
  const attempt = (remoteAddress: string) => app.inject({ method: 'POST', url: '/api/auth/login', remoteAddress, payload: { username: 'alice' } })
  const statuses: number[] = []
  for (let i = 0; i < 200; i++) statuses.push((await attempt('10.0.0.1')).statusCode)
  for (let i = 0; i < 3; i++) statuses.push((await attempt('10.0.0.2')).statusCode)
  t.same(statuses.filter((status) => status === 429).length, 198 + 1)

  const auditLines = (clientIp: string) => lines.filter((line) => line.audit === 'login' && line.clientIp === clientIp)
  t.equal(auditLines('10.0.0.1').length, REJECTION_LOG_LIMITS.firstPerInterval, 'the flooding address: only the first rejections logged one by one')
  t.equal(auditLines('10.0.0.2').length, 3, 'another address is logged as usual')

  const metrics = await app.metrics.registry.metrics()
  t.match(metrics, /auth_login_attempts_total\{outcome="rate_limited"\} 199\n/, 'every rejection is counted')

  closed = true
  await app.close()
  const summaries = lines.filter((line) => line.rejections !== undefined)
  t.same(summaries.map(({ clientIp, rejections, outcomes }) => ({ clientIp, rejections, outcomes })), [
    { clientIp: '10.0.0.1', rejections: 190, outcomes: { rate_limited: 190 } }
  ], 'one summary line with the count, written when the interval ends (here: at close)')
  t.equal(auditLines('10.0.0.1').length, REJECTION_LOG_LIMITS.firstPerInterval + 1)
})

t.test('summaries at each interval end; a new interval logs the first rejections again; addresses beyond the maximum share one count', async (t) => {
  const written: RejectionSummary[] = []
  const log = new RejectionLog({ firstPerInterval: 2, intervalMs: 200, maxAddresses: 2, write: (summary) => written.push(summary) })
  t.teardown(() => log.close())
  const admitted = (clientIp: string, times: number) => Array.from({ length: times }, () => log.admit(clientIp, 'rate_limited')).filter(Boolean).length
  t.equal(admitted('10.0.0.1', 5), 2)
  t.equal(admitted('10.0.0.2', 1), 1)
  t.equal(admitted('10.0.0.3', 4), 0, 'a third address is over the maximum')
  t.equal(admitted('10.0.0.4', 1), 0)
  // Generous for a busy machine: the timer fires every 200 ms.
  for (let waited = 0; written.length === 0 && waited < 5000; waited += 50) await sleep(50)
  t.same(written, [
    { clientIp: '10.0.0.1', outcomes: { rate_limited: 3 }, intervalMs: 200 },
    { clientIp: undefined, outcomes: { rate_limited: 5 }, intervalMs: 200 }
  ])
  t.equal(admitted('10.0.0.1', 3), 2, 'a new interval: the first rejections are logged again')
})
