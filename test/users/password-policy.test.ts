import { readFileSync } from 'node:fs'
import t from 'tap'
import { COMMON_PASSWORDS_FILE, PASSWORD_MAX_LENGTH, passwordContextWords, passwordPolicyViolation } from '../../src/users/password-policy.ts'

const options = { username: 'alice', minLength: 15 }
/** `count` distinct code points from `first` on, shuffled: long, with no repetition or sequence for the estimator to find. */
const distinct = (first: number, count: number) => Array.from({ length: count }, (_, i) => String.fromCodePoint(first + (i * 7919) % 4096)).join('')

t.test('accepts a long enough password with no composition rules', async (t) => {
  t.equal(await passwordPolicyViolation('just lowercase words here', options), undefined)
  t.equal(await passwordPolicyViolation('314159265358979', options), undefined, 'digits only')
})

t.test('requires minLength characters, counted as code points after NFKC', async (t) => {
  t.equal(await passwordPolicyViolation('fourteen chars', options), 'Password must be at least 15 characters')
  t.equal(await passwordPolicyViolation('fifteen chars!!', options), undefined)
  t.equal(await passwordPolicyViolation('tw', { ...options, minLength: 8 }), 'Password must be at least 8 characters')

  // 14 emoji are 28 UTF-16 units but 14 characters.
  t.equal(await passwordPolicyViolation(distinct(0x1F400, 14), options), 'Password must be at least 15 characters')
  t.equal(await passwordPolicyViolation(distinct(0x1F400, 15), options), undefined)
  // 'e' + combining acute is one character once composed.
  t.equal(await passwordPolicyViolation('e\u0301'.repeat(14), options), 'Password must be at least 15 characters')
})

t.test(`allows at most ${PASSWORD_MAX_LENGTH} characters`, async (t) => {
  t.equal(await passwordPolicyViolation(distinct(0x4E00, PASSWORD_MAX_LENGTH), options), undefined)
  t.equal(await passwordPolicyViolation(distinct(0x4E00, PASSWORD_MAX_LENGTH + 1), options), 'Password must be at most 1024 characters')
  t.equal(await passwordPolicyViolation(distinct(0x1F300, PASSWORD_MAX_LENGTH), options), undefined, 'counted in characters, not UTF-16 units')
})

t.test('rejects common and breached passwords, in any case or width', async (t) => {
  const tooCommon = 'Password is too common: it appears in lists of breached passwords'
  t.equal(await passwordPolicyViolation('passwordpassword', options), tooCommon)
  t.equal(await passwordPolicyViolation('PassWordPASSWORD', options), tooCommon)
  t.equal(await passwordPolicyViolation('ｐａｓｓｗｏｒｄｐａｓｓｗｏｒｄ', options), tooCommon)
  t.equal(await passwordPolicyViolation('1qaz2wsx3edc4rfv', options), tooCommon)
  t.equal(await passwordPolicyViolation('iloveyou123', { ...options, minLength: 8 }), tooCommon, 'short entries count at a lower minimum')
})

t.test('rejects a password containing the username, in any case or width', async (t) => {
  const containsUsername = 'Password must not contain the username'
  t.equal(await passwordPolicyViolation('my name is alice, hello', options), containsUsername)
  t.equal(await passwordPolicyViolation('my name is ALICE, hello', options), containsUsername)
  t.equal(await passwordPolicyViolation('my name is ａｌｉｃｅ, hello', options), containsUsername)
  t.equal(await passwordPolicyViolation('my name is alice, hello', { ...options, username: 'Ａｌｉｃｅ' }), containsUsername)
  t.equal(await passwordPolicyViolation('my name is alicia, hello', options), undefined)
})

t.test('reports the first rule broken', async (t) => {
  t.equal(await passwordPolicyViolation('password', options), 'Password must be at least 15 characters', 'short before common')
  t.equal(await passwordPolicyViolation('passwordpassword', { ...options, username: 'password' }),
    'Password is too common: it appears in lists of breached passwords', 'common before username')
})

t.test('the bundled list is lowercase, deduplicated, and holds no entry shorter than 8', async (t) => {
  const entries = readFileSync(COMMON_PASSWORDS_FILE, 'utf8').split('\n')
  t.equal(entries.pop(), '', 'ends with a newline')
  t.ok(entries.length > 10_000, `${entries.length} entries`)
  t.equal(new Set(entries).size, entries.length, 'no duplicates')
  t.same(entries.filter((entry) => entry !== entry.toLowerCase()), [], 'all lowercase')
  t.same(entries.filter((entry) => [...entry].length < 8), [], 'none shorter than 8')
})

t.test('refuses what an estimator guesses quickly: repetition, sequences, keyboard walks (zxcvbn score < 3)', async (t) => {
  for (const weak of ['123456789012345', 'aaaaaaaaaaaaaaa', 'abcdefghijklmnop', 'qwertyuiopasdfgh', 'zyxwvutsrqponmlk', 'abcabcabcabcabcabc']) {
    t.match(await passwordPolicyViolation(weak, options), /^Password is too easy to guess/, weak)
  }
  t.equal(await passwordPolicyViolation('aaaaaaaaaaaaaaa', options), 'Password is too easy to guess (Repeated characters like "aaa" are easy to guess): a few unrelated words make a strong passphrase', 'the estimator says why')
  for (const strong of ['violet-harbour-quietly-83-lanterns', 'correct horse battery staple', 'a different, longer passphrase']) {
    t.equal(await passwordPolicyViolation(strong, options), undefined, strong)
  }
})

t.test('refuses context words: the service name and JWT_ISSUER\'s host, as a plain name or a URL', async (t) => {
  t.same(passwordContextWords({ JWT_ISSUER: 'auth-service' }), ['auth-service'])
  t.same(passwordContextWords({ JWT_ISSUER: 'https://login.example.com/' }), ['auth-service', 'login.example.com'])
  const contextWords = passwordContextWords({ JWT_ISSUER: 'https://login.example.com' })
  t.equal(await passwordPolicyViolation('my auth-service password 2024', { ...options, contextWords }), 'Password must not contain "auth-service"')
  t.equal(await passwordPolicyViolation('LOGIN.EXAMPLE.COM is where I go', { ...options, contextWords }), 'Password must not contain "login.example.com"')
  t.equal(await passwordPolicyViolation('violet-harbour-quietly-83-lanterns', { ...options, contextWords }), undefined)
})
