import { readFileSync } from 'node:fs'
import t from 'tap'
import { COMMON_PASSWORDS_FILE, PASSWORD_MAX_LENGTH, passwordPolicyViolation } from '../../src/users/password-policy.js'

const options = { username: 'alice', minLength: 15 }

t.test('accepts a long enough password with no composition rules', async (t) => {
  t.equal(passwordPolicyViolation('just lowercase words here', options), undefined)
  t.equal(passwordPolicyViolation('314159265358979', options), undefined, 'digits only')
})

t.test('requires minLength characters, counted as code points after NFKC', async (t) => {
  t.equal(passwordPolicyViolation('fourteen chars', options), 'Password must be at least 15 characters')
  t.equal(passwordPolicyViolation('fifteen chars!!', options), undefined)
  t.equal(passwordPolicyViolation('tw', { ...options, minLength: 8 }), 'Password must be at least 8 characters')

  // 14 emoji are 28 UTF-16 units but 14 characters.
  t.equal(passwordPolicyViolation('🐴🔋📎'.repeat(4) + '🐴🔋', options), 'Password must be at least 15 characters')
  t.equal(passwordPolicyViolation('🐴🔋📎'.repeat(5), options), undefined)
  // 'e' + combining acute is one character once composed.
  t.equal(passwordPolicyViolation('e\u0301'.repeat(14), options), 'Password must be at least 15 characters')
})

t.test(`allows at most ${PASSWORD_MAX_LENGTH} characters`, async (t) => {
  t.equal(passwordPolicyViolation('x'.repeat(PASSWORD_MAX_LENGTH), options), undefined)
  t.equal(passwordPolicyViolation('x'.repeat(PASSWORD_MAX_LENGTH + 1), options), 'Password must be at most 1024 characters')
  t.equal(passwordPolicyViolation('🐴'.repeat(PASSWORD_MAX_LENGTH), options), undefined, 'counted in characters, not UTF-16 units')
})

t.test('rejects common and breached passwords, in any case or width', async (t) => {
  const tooCommon = 'Password is too common: it appears in lists of breached passwords'
  t.equal(passwordPolicyViolation('passwordpassword', options), tooCommon)
  t.equal(passwordPolicyViolation('PassWordPASSWORD', options), tooCommon)
  t.equal(passwordPolicyViolation('ｐａｓｓｗｏｒｄｐａｓｓｗｏｒｄ', options), tooCommon)
  t.equal(passwordPolicyViolation('1qaz2wsx3edc4rfv', options), tooCommon)
  t.equal(passwordPolicyViolation('iloveyou123', { ...options, minLength: 8 }), tooCommon, 'short entries count at a lower minimum')
})

t.test('rejects a password containing the username, in any case or width', async (t) => {
  const containsUsername = 'Password must not contain the username'
  t.equal(passwordPolicyViolation('my name is alice, hello', options), containsUsername)
  t.equal(passwordPolicyViolation('my name is ALICE, hello', options), containsUsername)
  t.equal(passwordPolicyViolation('my name is ａｌｉｃｅ, hello', options), containsUsername)
  t.equal(passwordPolicyViolation('my name is alice, hello', { ...options, username: 'Ａｌｉｃｅ' }), containsUsername)
  t.equal(passwordPolicyViolation('my name is alicia, hello', options), undefined)
})

t.test('reports the first rule broken', async (t) => {
  t.equal(passwordPolicyViolation('password', options), 'Password must be at least 15 characters', 'short before common')
  t.equal(passwordPolicyViolation('passwordpassword', { ...options, username: 'password' }),
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
