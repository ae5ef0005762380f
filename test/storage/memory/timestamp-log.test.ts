import t from 'tap'
import { TimestampLog } from '../../../src/storage/memory/timestamp-log.ts'

const WINDOW = 100

/** What the Redis script's sorted set answers: every attempt after `now - windowMs`, in order. */
function inWindow (attempts: number[], now: number, windowMs: number): number[] {
  return attempts.filter((at) => at > now - windowMs).sort((a, b) => a - b)
}

/** A seeded generator, so a failure repeats. */
function random (seed: number): () => number {
  return () => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31
    return seed / 2 ** 31
  }
}

t.test('an attempt counts while it is in the window and not from the moment it is windowMs old', async (t) => {
  const log = new TimestampLog()
  t.equal(log.count(1000, WINDOW), 0)
  t.equal(log.oldest, undefined)
  log.record(1000, WINDOW)
  log.record(1050, WINDOW)
  t.equal(log.expiresAt, 1050 + WINDOW, 'expires when the newest leaves the window')
  t.equal(log.count(1099, WINDOW), 2)
  t.equal(log.oldest, 1000)
  t.equal(log.count(1100, WINDOW), 1, 'exactly windowMs old: gone, as ZREMRANGEBYSCORE removes it')
  t.equal(log.oldest, 1050)
  t.equal(log.count(1150, WINDOW), 0)
  t.equal(log.oldest, undefined)
  log.record(1200, WINDOW)
  t.equal(log.count(1200, WINDOW), 1, 'an emptied log counts again')
  t.equal(log.oldest, 1200)
})

t.test('attempts made at once all count', async (t) => {
  const log = new TimestampLog()
  for (let i = 0; i < 5; i++) log.record(1000, WINDOW)
  t.equal(log.count(1000, WINDOW), 5)
  t.equal(log.count(1100, WINDOW), 0)
})

t.test('a clock that steps back keeps the log in order, as the sorted set is', async (t) => {
  const log = new TimestampLog()
  log.record(1000, WINDOW)
  log.record(1060, WINDOW)
  log.record(1030, WINDOW)
  log.record(1010, WINDOW)
  t.equal(log.count(1060, WINDOW), 4)
  t.equal(log.oldest, 1000)
  t.equal(log.count(1105, WINDOW), 3, 'only the attempt made at 1000 has left')
  t.equal(log.oldest, 1010)
  t.equal(log.count(1131, WINDOW), 1)
  t.equal(log.oldest, 1060)
})

t.test('through many compactions the log answers as the sorted set does', async (t) => {
  const next = random(20)
  for (const windowMs of [1, 7, 100, 1000]) {
    const log = new TimestampLog()
    let attempts: number[] = []
    let now = 0
    let mismatches = 0
    for (let step = 0; step < 20_000; step++) {
      // Mostly forward in small steps, sometimes a long pause that empties the window, rarely a step back.
      const roll = next()
      now += roll < 0.02 ? 3 * windowMs : roll < 0.03 ? -Math.floor(next() * 5) : Math.floor(next() * 3)
      const expected = inWindow(attempts, now, windowMs)
      attempts = expected
      if (log.count(now, windowMs) !== expected.length || log.oldest !== expected[0]) mismatches++
      // Bursts fill the window, then it drains: the head passes the compaction point again and again.
      if (next() < 0.7) {
        log.record(now, windowMs)
        attempts.push(now)
      }
    }
    t.equal(mismatches, 0, `window ${windowMs} ms: every count and oldest as the sorted set's`)
  }
})

t.test('a log that fills and drains over and over keeps counting right', async (t) => {
  const log = new TimestampLog()
  let now = 0
  for (let cycle = 0; cycle < 200; cycle++) {
    for (let i = 0; i < 50; i++) log.record(now + i, WINDOW)
    // Half the burst left: the head has passed the 25 oldest, and compaction leaves the rest.
    t.equal(log.count(now + 49 + WINDOW - 24, WINDOW), 24)
    t.equal(log.oldest, now + 25 + 1)
    now += 10 * WINDOW
  }
  t.equal(log.count(now, WINDOW), 0)
})
