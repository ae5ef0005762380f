import { decodeProtectedHeader, decodeJwt } from 'jose'
import type { InjectOptions } from 'fastify'
import t from 'tap'
import { PASSWORD, addUser, buildTestApp } from '../../helper.ts'
import { costInTurns } from '../../timing.ts'

const login = (body: unknown) => ({
  method: 'POST' as const,
  url: '/api/auth/login',
  headers: { 'content-type': 'application/json' },
  payload: JSON.stringify(body)
})

t.test('a correct login returns exactly the contract envelope', async (t) => {
  const app = await buildTestApp(t)
  await addUser(app, 'john.doe', PASSWORD)

  const before = Date.now()
  const response = await app.inject(login({ username: 'john.doe', password: PASSWORD }))
  const after = Date.now()

  t.equal(response.statusCode, 200)
  const body = response.json()
  t.same(Object.keys(body).sort(), ['data', 'message', 'meta'])
  t.same(Object.keys(body.data).sort(), ['accessToken', 'expireDate', 'message', 'remainingTime', 'tokenType', 'username'])
  t.same(Object.keys(body.meta).sort(), ['executionTime', 'generatedAt'])
  t.equal(body.message, 'Authentication successful')
  t.equal(body.data.message, 'Authentication successful')
  t.equal(body.data.tokenType, 'Bearer')
  t.equal(body.data.username, 'john.doe')
  t.ok(body.meta.generatedAt >= before && body.meta.generatedAt <= after, 'generatedAt is the response time')
  t.ok(Number.isInteger(body.meta.executionTime) && body.meta.executionTime >= 0 && body.meta.executionTime <= after - before)
  t.equal(body.data.remainingTime, body.data.expireDate - body.meta.generatedAt)
  // iat is whole seconds, so the token can be up to a second older than the request that asked for it
  t.ok(body.data.remainingTime > 899_000 - (after - before) && body.data.remainingTime <= 900_000, `remainingTime ${body.data.remainingTime} is 15 minutes less the time since iat`)

  const header = decodeProtectedHeader(body.data.accessToken)
  t.equal(header.alg, 'EdDSA')
  t.equal(header.kid, app.accessTokens.keyRing.signingKey.kid)
  const claims = decodeJwt(body.data.accessToken)
  t.equal(claims.sub, 'john.doe')
  t.equal(claims.iss, 'http://localhost:3000', 'JWT_ISSUER, by default the local URL')
  t.equal(claims.aud, 'internal-services')
  t.match(claims.jti, /^[0-9a-f-]{36}$/)
  t.equal((claims.exp ?? 0) - (claims.iat ?? 0), 900)
  t.equal(body.data.expireDate, (claims.exp ?? 0) * 1000, 'expireDate is the exp claim in ms')
  t.same((await app.accessTokens.verify(body.data.accessToken, 'user')).sub, 'john.doe', 'the token verifies with the service key')
})

t.test('usernames match case-insensitively after NFKC; the stored form is returned', async (t) => {
  const app = await buildTestApp(t)
  await addUser(app, 'John.Doe', PASSWORD)
  for (const typed of ['john.doe', 'JOHN.DOE', 'ｊｏｈｎ.ｄｏｅ']) {
    const response = await app.inject(login({ username: typed, password: PASSWORD }))
    t.equal(response.statusCode, 200, typed)
    t.equal(response.json().data.username, 'John.Doe')
  }
})

t.test('the token lifetime follows TOKEN_TTL_SECONDS', async (t) => {
  const app = await buildTestApp(t, { TOKEN_TTL_SECONDS: '300' })
  await addUser(app, 'alice', PASSWORD)
  const before = Date.now()
  const body = (await app.inject(login({ username: 'alice', password: PASSWORD }))).json()
  const after = Date.now()
  const claims = decodeJwt(body.data.accessToken)
  t.equal((claims.exp ?? 0) - (claims.iat ?? 0), 300)
  t.ok(body.data.remainingTime > 299_000 - (after - before) && body.data.remainingTime <= 300_000)
})

t.test('a wrong password and an unknown user are indistinguishable', async (t) => {
  const app = await buildTestApp(t)
  await addUser(app, 'john.doe', PASSWORD)

  const wrongPassword = await app.inject(login({ username: 'john.doe', password: 'not the password at all' }))
  const unknownUser = await app.inject(login({ username: 'nobody', password: PASSWORD }))

  for (const response of [wrongPassword, unknownUser]) {
    t.equal(response.statusCode, 401)
    t.same(response.json(), { message: 'Username or password is incorrect' })
  }
  const headerNames = (headers: Record<string, unknown>) => Object.keys(headers).filter((name) => name !== 'date').sort()
  t.same(headerNames(unknownUser.headers), headerNames(wrongPassword.headers))
  t.equal(unknownUser.headers['content-length'], wrongPassword.headers['content-length'])
})

t.test('an unknown user costs an argon2 verification like a known one', async (t) => {
  // Not a timing benchmark: checks that both paths do comparable work (same order of magnitude),
  // which fails if the unknown-user path skipped hashing (it would be ~100x faster).
  const app = await buildTestApp(t, { RATE_LIMIT_MAX: '100' })
  await addUser(app, 'john.doe', PASSWORD)
  const attempt = (username: string) => () => app.inject(login({ username, password: 'wrong password value' }))
  const { ratio, turns } = await costInTurns(attempt('nobody'), attempt('john.doe'))
  t.ok(ratio > 1 / 3 && ratio < 3, `unknown / known, median of turns ${ratio.toFixed(2)} (${turns})`)
})

t.test('every error is { message } with the right status', async (t) => {
  const app = await buildTestApp(t, { RATE_LIMIT_MAX: '100' })
  const cases: Array<[string, InjectOptions, number]> = [
    ['missing password', login({ username: 'a' }), 400],
    ['missing body', { method: 'POST', url: '/api/auth/login' }, 400],
    ['number is not a string', login({ username: 123, password: PASSWORD }), 400],
    ['unknown property', login({ username: 'a', password: PASSWORD, admin: true }), 400],
    ['empty username', login({ username: '', password: PASSWORD }), 400],
    ['username over 128 characters', login({ username: 'u'.repeat(129), password: PASSWORD }), 400],
    ['password over 1024 characters', login({ username: 'a', password: 'p'.repeat(1025) }), 400],
    ['array body', login([]), 400],
    ['malformed JSON', { method: 'POST', url: '/api/auth/login', headers: { 'content-type': 'application/json' }, payload: '{"username": "a",' }, 400],
    ['empty JSON body', { method: 'POST', url: '/api/auth/login', headers: { 'content-type': 'application/json' }, payload: '' }, 400],
    ['body over the cap', login({ username: 'a', password: 'p'.repeat(20_000) }), 413],
    ['not JSON', { method: 'POST', url: '/api/auth/login', headers: { 'content-type': 'text/plain' }, payload: 'username=a' }, 415],
    ['form encoded', { method: 'POST', url: '/api/auth/login', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: 'username=a&password=b' }, 415],
    ['unknown route', { method: 'GET', url: '/nope' }, 404],
    ['wrong method', { method: 'GET', url: '/api/auth/login' }, 404]
  ]
  for (const [name, request, status] of cases) {
    const response = await app.inject(request)
    t.equal(response.statusCode, status, name)
    const body = response.json()
    t.same(Object.keys(body), ['message'], `${name}: only a message`)
    t.type(body.message, 'string')
    t.notMatch(body.message, /FST_|statusCode|stack/, `${name}: no framework internals`)
  }
})

t.test('validation messages say what is wrong', async (t) => {
  const app = await buildTestApp(t)
  const response = await app.inject(login({ username: 'a' }))
  t.match(response.json().message, /password/)
})

t.test('a changed argon2 parameter is applied at the next successful login', async (t) => {
  const first = await buildTestApp(t)
  await addUser(first, 'alice', PASSWORD)
  const { passwordHash: oldHash } = (await first.users.find('alice'))!
  t.match(oldHash, /^\$argon2id\$v=19\$m=19456,t=2,p=1\$/)

  const second = await buildTestApp(t, { DATA_DIR: first.config.DATA_DIR, ARGON2_MEMORY_KIB: '12288', ARGON2_TIME_COST: '3' })
  t.equal((await second.inject(login({ username: 'alice', password: 'wrong password here' }))).statusCode, 401)
  t.equal((await second.users.find('alice'))!.passwordHash, oldHash, 'a failed login does not rehash')

  t.equal((await second.inject(login({ username: 'alice', password: PASSWORD }))).statusCode, 200)
  const { passwordHash: newHash } = (await second.users.find('alice'))!
  t.match(newHash, /^\$argon2id\$v=19\$m=12288,t=3,p=1\$/)
  t.equal((await second.inject(login({ username: 'alice', password: PASSWORD }))).statusCode, 200, 'the new hash verifies')
})

t.test('health routes', async (t) => {
  const app = await buildTestApp(t)
  const live = await app.inject({ method: 'GET', url: '/health/live' })
  t.equal(live.statusCode, 200)
  t.same(live.json(), { status: 'ok' })
  const ready = await app.inject({ method: 'GET', url: '/health/ready' })
  t.equal(ready.statusCode, 200)
  t.same(ready.json(), { status: 'ready' })
})

t.test('the dummy hash is made at start: the first unknown username after a start costs no more than the next', async (t) => {
  // Costly enough that hashing the dummy on top of verifying would show clearly (about twice the
  // cost), and that a first request's own cost (compiling the route's code) does not.
  const costly = { ARGON2_MEMORY_KIB: '16384', ARGON2_TIME_COST: '8' }
  // The cost is the CPU time the process spends (the hashing threads' included), which other
  // processes on a busy machine do not inflate as they do the elapsed time.
  const costMs = async (app: Awaited<ReturnType<typeof buildTestApp>>, username: string) => {
    const before = process.cpuUsage()
    t.equal((await app.inject(login({ username, password: 'not the password at all' }))).statusCode, 401)
    const { user, system } = process.cpuUsage(before)
    return (user + system) / 1000
  }
  const firsts: number[] = []
  const seconds: number[] = []
  for (let start = 0; start < 3; start++) {
    const app = await buildTestApp(t, costly)
    firsts.push(await costMs(app, `nobody-${start}`))
    seconds.push(await costMs(app, `nobody-else-${start}`))
    await app.close()
  }
  const median = (values: number[]) => values.sort((a, b) => a - b)[1]
  t.ok(median(firsts) < median(seconds) * 1.5, `first ${median(firsts).toFixed(1)} ms, next ${median(seconds).toFixed(1)} ms of CPU (medians of 3 starts)`)
})
