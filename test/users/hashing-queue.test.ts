import { setImmediate } from 'node:timers/promises'
import t from 'tap'
import { HashingQueue, HashingRefused, type RefusalReason } from '../../src/users/hashing-queue.ts'

/** Work that runs until released, recording that it started; `running` resolves when it starts. */
function work (started: string[], name: string) {
  let release = () => {}
  let markRunning = () => {}
  const done = new Promise<string>((resolve) => { release = () => resolve(name) })
  const running = new Promise<void>((resolve) => { markRunning = resolve })
  return { run: async () => { started.push(name); markRunning(); return await done }, release: () => release(), running }
}

t.test('bounded work beyond the queue is refused at once; unbounded work waits; first in, first out', async (t) => {
  const refusals: RefusalReason[] = []
  const queue = new HashingQueue({ threads: 1, queueMax: 1, onRefused: (reason) => refusals.push(reason) })
  const started: string[] = []
  const [a, b, c, d] = ['a', 'b', 'c', 'd'].map((name) => work(started, name))
  const ranA = queue.run(a.run, Infinity)
  const ranB = queue.run(b.run, Infinity)
  await t.rejects(queue.run(c.run, Infinity), new HashingRefused('queue_full'))
  t.throws(() => queue.refuseWhenFull(), HashingRefused)
  // Setting or rehashing a password after a successful login is never refused.
  const ranD = queue.run(d.run)
  t.equal(queue.waiting, 2)
  // Whatever could start without a thread coming free has by the next turn of the event loop.
  await setImmediate()
  t.same(started, ['a'], 'one thread: one at a time')
  a.release()
  t.equal(await ranA, 'a')
  await b.running
  t.same(started, ['a', 'b'])
  t.doesNotThrow(() => queue.refuseWhenFull(), 'room again once one has started')
  b.release()
  d.release()
  t.same(await Promise.all([ranB, ranD]), ['b', 'd'])
  t.same(started, ['a', 'b', 'd'], 'the refused one never ran')
  t.same(refusals, ['queue_full', 'queue_full'])
})

t.test('work whose turn comes after its deadline is refused without running', async (t) => {
  const refusals: RefusalReason[] = []
  const queue = new HashingQueue({ threads: 1, queueMax: 10, onRefused: (reason) => refusals.push(reason) })
  const started: string[] = []
  const [a, b, c] = ['a', 'b', 'c'].map((name) => work(started, name))
  const ranA = queue.run(a.run, Infinity)
  // A deadline that has passed by the time its turn comes, whenever that is.
  const late = queue.run(b.run, performance.now())
  const inTime = queue.run(c.run, performance.now() + 60_000)
  a.release()
  await ranA
  await t.rejects(late, new HashingRefused('deadline'))
  c.release()
  t.equal(await inTime, 'c')
  t.same(started, ['a', 'c'])
  t.same(refusals, ['deadline'])
})
