import t from 'tap'
import { configuredPasswordHasher, PasswordHasher, type Argon2Parameters } from '../../src/users/passwords.ts'
import { costInTurns } from '../timing.ts'

// Real argon2id, at the lowest cost it accepts, where the cost does not matter.
const CHEAP: Argon2Parameters = { memoryCost: 1024, timeCost: 1, parallelism: 1 }
const PASSWORD = 'correct horse battery staple'

t.test('hashes with argon2id and the given parameters, and verifies only the right password', async (t) => {
  const hasher = new PasswordHasher(CHEAP)
  const hash = await hasher.hash(PASSWORD)
  t.match(hash, /^\$argon2id\$v=19\$m=1024,t=1,p=1\$/)
  t.not(hash, await hasher.hash(PASSWORD), 'salted')
  t.same(await hasher.verify(hash, PASSWORD), { valid: true, needsRehash: false })
  t.same(await hasher.verify(hash, 'correct horse battery stapler'), { valid: false, needsRehash: false })
})

t.test('hashes with the configured parameters', async (t) => {
  const hasher = configuredPasswordHasher({ ARGON2_MEMORY_KIB: 2048, ARGON2_TIME_COST: 2, ARGON2_PARALLELISM: 2 })
  t.match(await hasher.hash(PASSWORD), /^\$argon2id\$v=19\$m=2048,t=2,p=2\$/)
})

t.test('a password typed in composed or decomposed form is the same password (NFKC)', async (t) => {
  const hasher = new PasswordHasher(CHEAP)
  const composed = 'caf\u00e9 au lait, s\u2019il vous pla\u00eet'
  const decomposed = 'cafe\u0301 au lait, s\u2019il vous plai\u0302t'
  t.not(composed, decomposed)
  t.equal((await hasher.verify(await hasher.hash(composed), decomposed)).valid, true)
  t.equal((await hasher.verify(await hasher.hash(decomposed), composed)).valid, true)
  t.equal((await hasher.verify(await hasher.hash('ｐａｓｓｗｏｒｄ'), 'password')).valid, true, 'fullwidth folds to ASCII')
})

t.test('asks for a rehash when the hash was made with other parameters', async (t) => {
  const hash = await new PasswordHasher(CHEAP).hash(PASSWORD)
  for (const changed of [{ memoryCost: 2048 }, { timeCost: 2 }, { parallelism: 2 }]) {
    const check = await new PasswordHasher({ ...CHEAP, ...changed }).verify(hash, PASSWORD)
    t.same(check, { valid: true, needsRehash: true }, JSON.stringify(changed))
  }
  t.same(await new PasswordHasher({ ...CHEAP }).verify(hash, PASSWORD), { valid: true, needsRehash: false })
  t.same(await new PasswordHasher({ ...CHEAP, timeCost: 2 }).verify(hash, 'wrong password'), { valid: false, needsRehash: false },
    'not for a wrong password, which cannot be rehashed')
})

t.test('a malformed stored hash verifies as invalid instead of throwing', async (t) => {
  const hasher = new PasswordHasher(CHEAP)
  const hash = await hasher.hash(PASSWORD)
  for (const malformed of ['', 'not a hash', '$argon2id$v=19$m=abc', hash.slice(0, -10), hash.replace('argon2id', 'argon9')]) {
    t.same(await hasher.verify(malformed, PASSWORD), { valid: false, needsRehash: false }, JSON.stringify(malformed))
  }
})

t.test('verifyDummy is always false and costs about one real verification', async (t) => {
  // Costly enough that skipping the argon2 work would show clearly.
  const hasher = new PasswordHasher({ memoryCost: 16384, timeCost: 3, parallelism: 1 })
  const hash = await hasher.hash(PASSWORD)
  t.equal(await hasher.verifyDummy(PASSWORD), false)
  t.equal(await hasher.verifyDummy(''), false)

  const { ratio, turns } = await costInTurns(() => hasher.verifyDummy('wrong password'), () => hasher.verify(hash, 'wrong password'))
  t.ok(ratio > 0.5 && ratio < 2, `unknown user / wrong password, median of turns ${ratio.toFixed(2)} (${turns})`)
})
