import t from 'tap'
import {
  currentKey, dueStep, keyState, rotationSchedule, switchAt, UnknownKeyError, withExpiries, withFileKey, withNewKey, withoutKey,
  type SealedKey, type StoredSigningKey
} from '../../src/tokens/key-lifecycle.ts'

// The lifecycle's rules as pure functions of the stored keys and the time: no store, no clock.

let serial = 0
const sealed = (): SealedKey => ({ kid: `key-${++serial}`, algorithm: 'EdDSA', sealedPrivateKey: 'sealed' })
const SECOND = 1000

t.test('the schedule follows from the interval: a third is the lead, max-age the lead less two seconds, at most 300 s', async (t) => {
  t.same(rotationSchedule(15), { intervalMs: 15_000, leadMs: 5_000, jwksMaxAgeSeconds: 3 })
  t.same(rotationSchedule(60), { intervalMs: 60_000, leadMs: 20_000, jwksMaxAgeSeconds: 18 })
  t.same(rotationSchedule(3 * 86400), { intervalMs: 259_200_000, leadMs: 86_400_000, jwksMaxAgeSeconds: 300 })
})

t.test('a first key signs at once; the next is published a lead before it signs; none is added twice', async (t) => {
  const schedule = rotationSchedule(15)
  t.equal(dueStep([], 0, schedule), 'first key')
  const first = withNewKey([], 0, schedule, sealed()) as StoredSigningKey[]
  t.match(first, [{ kid: 'key-1', createdAt: 0, activatesAt: 0 }])
  t.equal(withNewKey(first, 0, schedule, sealed()), undefined, 'a replica that lost the race adds nothing')
  t.equal(dueStep(first, 9_999, schedule), undefined, 'nothing is due before interval less lead')

  t.equal(dueStep(first, 10_000, schedule), 'next key')
  const second = withNewKey(first, 10_000, schedule, sealed()) as StoredSigningKey[]
  t.match(second, [{ kid: 'key-1', activatesAt: 0, retiresAt: 15_000 }, { kid: 'key-3', createdAt: 10_000, activatesAt: 15_000 }])
  t.equal(withNewKey(second, 10_000, schedule, sealed()), undefined)
  t.same([keyState(second[0], 14_999), keyState(second[1], 14_999)], ['current', 'next'])
  t.same([keyState(second[0], 15_000), keyState(second[1], 15_000)], ['retired', 'current'])
  t.equal(switchAt(second, 10_000, schedule), 15_000)

  // Every replica down past the switch: the next key gets a full lead from when it is created.
  const late = withNewKey(first, 40_000, schedule, sealed()) as StoredSigningKey[]
  t.match(late[1], { createdAt: 40_000, activatesAt: 45_000 })
  t.equal(currentKey(late, 44_999)?.kid, 'key-1', 'the old key signs on meanwhile')
})

t.test('a key file\'s key signs on until the next key, created at once, has been published for a lead', async (t) => {
  const schedule = rotationSchedule(15)
  const imported = withFileKey([], 100_000, schedule, sealed()) as StoredSigningKey[]
  t.equal(currentKey(imported, 100_000)?.kid, imported[0].kid, 'it signs, as it did from its file')
  t.equal(withFileKey(imported, 100_000, schedule, sealed()), undefined, 'once')
  t.equal(dueStep(imported, 100_000, schedule), 'next key')
  const next = withNewKey(imported, 100_000, schedule, sealed()) as StoredSigningKey[]
  t.match(next, [{ retiresAt: 105_000 }, { createdAt: 100_000, activatesAt: 105_000 }])
})

t.test('a retired key expires the longest token lifetime plus the clock tolerance after it retired, then leaves the store', async (t) => {
  const schedule = rotationSchedule(15)
  const keys = withNewKey(withNewKey([], 0, schedule, sealed()) as StoredSigningKey[], 10_000, schedule, sealed()) as StoredSigningKey[]
  t.equal(dueStep(keys, 15_000, schedule), 'expiry')
  const expiring = withExpiries(keys, 15_000, 10_000) as StoredSigningKey[]
  t.equal(expiring[0].expiresAt, 30_000, '15 s retirement + 10 s lifetime + 5 s tolerance')
  t.equal(withExpiries(expiring, 15_000, 10_000), undefined)
  t.equal(keyState(expiring[0], 29_999), 'retired')
  t.equal(keyState(expiring[0], 30_000), 'expired')
  t.same((withExpiries(expiring, 30_000, 10_000) as StoredSigningKey[]).map((key) => key.kid), [expiring[1].kid])
})

t.test('over many rotations the JWKS never holds more than three keys, a key signs only after a lead, and stays until its tokens end', async (t) => {
  // The tightest settings: a 15 s interval and tokens that live as long, replicas ticking every second.
  const schedule = rotationSchedule(15)
  const lifetimeMs = 15_000
  let keys: StoredSigningKey[] = []
  let mostPublished = 0
  const signedUntil = new Map<string, number>()
  for (let now = 0; now < 200_000; now += 100) {
    if (now % SECOND === 0) {
      const step = dueStep(keys, now, schedule)
      if (step === 'expiry') keys = withExpiries(keys, now, lifetimeMs) ?? keys
      else if (step !== undefined) keys = withNewKey(keys, now, schedule, sealed()) ?? keys
    }
    const published = keys.filter((key) => keyState(key, now) !== 'expired')
    mostPublished = Math.max(mostPublished, published.length)
    const signing = currentKey(keys, now)!
    if (now > 0 && signing.activatesAt > 0 && now - signing.createdAt < schedule.leadMs) t.fail(`${signing.kid} signs at ${now}, published at ${signing.createdAt}`)
    signedUntil.set(signing.kid, now)
    for (const [kid, until] of signedUntil) {
      const key = keys.find((stored) => stored.kid === kid)
      if (now < until + lifetimeMs + 5_000 && (key === undefined || keyState(key, now) === 'expired')) t.fail(`${kid} gone at ${now}, a token it signed at ${until} lives on`)
    }
  }
  t.equal(mostPublished, 3)
  t.ok(signedUntil.size >= 12, `${signedUntil.size} keys signed in 200 s`)
})

t.test('revoking a key removes it and never leaves the service without a signing key', async (t) => {
  const schedule = rotationSchedule(15)
  const withNext = withNewKey(withNewKey([], 0, schedule, sealed()) as StoredSigningKey[], 10_000, schedule, sealed()) as StoredSigningKey[]
  const [current, next] = withNext
  const replacement = sealed()

  const currentRevoked = withoutKey(withNext, current.kid, 11_000, replacement)
  t.same(currentRevoked.map((key) => key.kid), [next.kid], 'the next key takes over')
  t.equal(currentKey(currentRevoked, 11_000)?.kid, next.kid, 'and signs from now on')

  const alone = withoutKey([current], current.kid, 5_000, replacement)
  t.match(alone, [{ kid: replacement.kid, createdAt: 5_000, activatesAt: 5_000 }], 'without a next key, a new one signs at once')

  const nextRevoked = withoutKey(withNext, next.kid, 11_000, replacement)
  t.match(nextRevoked, [{ kid: current.kid, retiresAt: undefined }], 'the signing key signs on')
  t.equal(dueStep(nextRevoked, 11_000, schedule), 'next key', 'and a new next key is due at once')

  const retired = withExpiries(withNext, 15_000, 10_000) as StoredSigningKey[]
  t.same(withoutKey(retired, current.kid, 16_000, replacement).map((key) => key.kid), [next.kid], 'a retired key just goes')
  t.throws(() => withoutKey(withNext, 'no-such-kid', 11_000, replacement), UnknownKeyError)
  t.throws(() => withoutKey(retired, current.kid, 30_000, replacement), UnknownKeyError, 'an expired key is no longer published')
})
