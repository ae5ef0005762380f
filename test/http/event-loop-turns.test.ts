import t from 'tap'
import { EventLoopTurns } from '../../src/http/event-loop-turns.js'

t.test('requests taken together go on in the order they came, one per turn of the event loop', async (t) => {
  const turns = new EventLoopTurns()
  const events: string[] = []
  const allGone = new Promise<void>((resolve) => {
    for (const name of ['first', 'second', 'third']) {
      turns.take(() => {
        events.push(name)
        // What it left for the next turn (as the loop polls for a probe's request then) comes before the next one.
        setImmediate(() => {
          events.push(`after ${name}`)
          if (name === 'third') resolve()
        })
      })
    }
  })
  t.same(events, [], 'none goes on in the turn it was taken in')
  await allGone
  t.same(events, ['first', 'after first', 'second', 'after second', 'third', 'after third'])
})
