import { randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import t, { type Test } from 'tap'
import type { AttemptIdentity, AttemptOutcome, ThrottlePolicy, ThrottleStore } from '../../src/limits/account-throttle.ts'
import { STORE_MODES } from './store-modes.ts'

const POLICY: ThrottlePolicy = { threshold: 3, backoffScheduleMs: [300, 600], windowMs: 60_000, trustedAddressMs: 60_000, inFlightMs: 60_000 }

/** The keyed hashes of an account and of an address never used before. */
const account = () => randomUUID()
const address = () => randomUUID()

/** The store's two calls for one attempt, as AccountThrottle makes them: admitted, it ends with `outcome`. */
function attemptOn (store: ThrottleStore, policy = POLICY) {
  return async (accountHash: string, addressHash: string, outcome: AttemptOutcome = 'abandoned') => {
    const identity: AttemptIdentity = { account: accountHash, address: addressHash, attemptId: randomUUID() }
    const admission = await store.admit(identity, policy)
    if (admission.outcome === 'admitted') await store.finish(identity, admission.trusted, outcome, policy)
    return admission
  }
}

// The account throttle's store, on every mode: this process, and Redis on each topology. The rules
// (AccountThrottle's policy) are the same data for both.
for (const [mode, emptyStores] of Object.entries(STORE_MODES)) {
  const emptyStore = async (t: Test) => (await emptyStores(t)).stores.transient.accountThrottle
  t.test(`${mode} account throttle`, async (t) => {
    t.test('the threshold-th failure sets the first wait, each further one the next, the last repeating', async (t) => {
      const attempt = attemptOn(await emptyStore(t))
      const alice = account()
      for (let i = 0; i < 2; i++) t.same(await attempt(alice, address(), 'failure'), { outcome: 'admitted', trusted: false })
      // A failure, then the wait it sets, seen by the next attempt: the full wait less the time
      // between the two, which this measures (a busy machine may take a while between them).
      const waitAfterFailure = async (scheduledMs: number, message: string) => {
        const failed = Date.now()
        t.equal((await attempt(alice, address(), 'failure')).outcome, 'admitted')
        const next = await attempt(alice, address())
        const betweenMs = Date.now() - failed
        t.ok(next.outcome === 'wait' && next.waitMs > scheduledMs - betweenMs - 1 && next.waitMs <= scheduledMs, `${message}: ${next.outcome === 'wait' ? next.waitMs : next.outcome} ms of ${scheduledMs}, ${betweenMs} ms after the failure`)
        return next.outcome === 'wait' ? next.waitMs : 0
      }
      await sleep(await waitAfterFailure(300, 'the first wait'))
      await sleep(await waitAfterFailure(600, 'one attempt once the wait is over, then the next wait'))
      await waitAfterFailure(600, 'the last wait repeats')
      t.same(await attempt(account(), address()), { outcome: 'admitted', trusted: false }, 'another account is unaffected')
    })

    t.test('attempts in flight count: beyond the room the threshold leaves, an attempt is busy until one ends', async (t) => {
      const store = await emptyStore(t)
      const attempt = attemptOn(store)
      const alice = account()
      const inFlight = [{ account: alice, address: address(), attemptId: randomUUID() }, { account: alice, address: address(), attemptId: randomUUID() }]
      for (const identity of inFlight) t.equal((await store.admit(identity, POLICY)).outcome, 'admitted')
      t.equal((await attempt(alice, address(), 'failure')).outcome, 'admitted', 'the third of three fits, and fails')
      t.same(await attempt(alice, address()), { outcome: 'busy' }, 'with one failure and two in flight, no room is left')
      await store.finish(inFlight[0], false, 'abandoned', POLICY)
      t.equal((await attempt(alice, address())).outcome, 'admitted', 'an attempt that ends frees its room')
      await store.finish(inFlight[1], false, 'abandoned', POLICY)
      for (let i = 0; i < 3; i++) await attempt(alice, address())
      t.equal((await attempt(alice, address())).outcome, 'admitted', 'an abandoned attempt counts as no failure')
    })

    t.test('an attempt that never ends stops counting as in flight after inFlightMs', async (t) => {
      const store = await emptyStore(t)
      const policy = { ...POLICY, inFlightMs: 300 }
      const alice = account()
      for (let i = 0; i < 3; i++) t.equal((await store.admit({ account: alice, address: address(), attemptId: randomUUID() }, policy)).outcome, 'admitted')
      t.same(await attemptOn(store, policy)(alice, address()), { outcome: 'busy' })
      await sleep(300)
      t.equal((await attemptOn(store, policy)(alice, address())).outcome, 'admitted', 'as when a replica died mid-attempt')
    })

    t.test('a success trusts its address, which strangers\' failures do not hold back and its own do', async (t) => {
      const attempt = attemptOn(await emptyStore(t))
      const [alice, home] = [account(), address()]
      t.same(await attempt(alice, home, 'success'), { outcome: 'admitted', trusted: false })
      for (let i = 0; i < 3; i++) await attempt(alice, address(), 'failure')
      t.equal((await attempt(alice, address())).outcome, 'wait', 'strangers wait')
      t.same(await attempt(alice, home, 'failure'), { outcome: 'admitted', trusted: true }, 'home does not')
      await attempt(alice, home, 'failure')
      await attempt(alice, home, 'failure')
      t.equal((await attempt(alice, home)).outcome, 'wait', 'home waits after its own threshold of failures')
    })

    t.test('a success trusts its address for trustedAddressMs from then, each address on its own term', async (t) => {
      const policy = { ...POLICY, trustedAddressMs: 1000 }
      const attempt = attemptOn(await emptyStore(t), policy)
      const [alice, home, cafe] = [account(), address(), address()]
      await attempt(alice, home, 'success')
      await attempt(alice, cafe, 'success')
      await sleep(600)
      await attempt(alice, home, 'success')
      await sleep(600)
      t.same(await attempt(alice, home), { outcome: 'admitted', trusted: true }, 'the second success renewed home\'s term')
      t.same(await attempt(alice, cafe), { outcome: 'admitted', trusted: false }, 'the cafe\'s ended')
    })

    t.test('a success forgets the failures of its own address, and no other\'s', async (t) => {
      const attempt = attemptOn(await emptyStore(t))
      const [alice, laptop] = [account(), address()]
      await attempt(alice, laptop, 'failure')
      await attempt(alice, address(), 'failure')
      t.equal((await attempt(alice, laptop, 'success')).outcome, 'admitted')
      await attempt(alice, address(), 'failure')
      t.equal((await attempt(alice, address())).outcome, 'admitted', 'the laptop\'s failure was forgotten')
      await attempt(alice, address(), 'failure')
      t.equal((await attempt(alice, address())).outcome, 'wait', 'the stranger\'s was not')
    })
  })
}
