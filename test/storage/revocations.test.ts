import { randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import t, { type Test } from 'tap'
import { STORE_MODES } from './store-modes.ts'

// The revocation list's contract, on every mode: this process, and Redis on each topology.
for (const [mode, emptyStores] of Object.entries(STORE_MODES)) {
  const emptyList = async (t: Test) => (await emptyStores(t)).stores.durable.revocations
  t.test(`${mode} revocations`, async (t) => {
    t.test('a revoked token id is revoked, and no other', async (t) => {
      const revocations = await emptyList(t)
      const [revoked, other] = [randomUUID(), randomUUID()]
      t.equal(await revocations.isRevoked(revoked), false)
      await revocations.revoke(revoked, Date.now() + 60_000)
      t.equal(await revocations.isRevoked(revoked), true)
      t.equal(await revocations.isRevoked(other), false)
    })

    t.test('a revocation lasts exactly as long as its token', async (t) => {
      const revocations = await emptyList(t)
      const jti = randomUUID()
      const expiresAt = Date.now() + 300
      await revocations.revoke(jti, expiresAt)
      t.equal(await revocations.isRevoked(jti), true)
      // Redis expires keys by its own clock, to the millisecond: a little past the token's end.
      await sleep(expiresAt - Date.now() + 20)
      t.equal(await revocations.isRevoked(jti), false, 'gone once the token has expired anyway')
    })
  })
}
