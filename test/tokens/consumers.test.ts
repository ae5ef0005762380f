import { execFile } from 'node:child_process'
import { createHmac } from 'node:crypto'
import path from 'node:path'
import { promisify } from 'node:util'
import type { FastifyInstance } from 'fastify'
import { SignJWT, exportJWK, generateKeyPair, importPKCS8 } from 'jose'
import t from 'tap'
import { writePrivateKeyFile } from '../../src/tokens/keys.ts'
import { PASSWORD, addUser, buildTestApp, redisMode, tempDir } from '../helper.ts'
import { redisTopologyTest } from '../redis-topologies.ts'

async function loginToken (app: FastifyInstance, username = 'alice'): Promise<string> {
  const response = await app.inject({ method: 'POST', url: '/api/auth/login', payload: { username, password: PASSWORD } })
  return response.json().data.accessToken
}

const me = (app: FastifyInstance, authorization?: string) =>
  app.inject({ method: 'GET', url: '/api/auth/me', headers: authorization === undefined ? {} : { authorization } })

t.test('JWKS publishes every verifying key, public parts only, cacheable', async (t) => {
  const dir = await tempDir(t)
  const [signing, previous] = [path.join(dir, 'signing.pem'), path.join(dir, 'previous.pem')]
  await writePrivateKeyFile(signing, 'EdDSA')
  await writePrivateKeyFile(previous, 'RS256')
  const app = await buildTestApp(t, { JWT_PRIVATE_KEY_FILE: signing, JWT_VERIFY_KEY_FILES: previous })

  const response = await app.inject({ method: 'GET', url: '/.well-known/jwks.json' })
  t.equal(response.statusCode, 200)
  t.equal(response.headers['cache-control'], 'public, max-age=300')
  const { keys } = response.json()
  t.equal(keys.length, 2)
  const [okp, rsa] = keys
  t.same(Object.keys(okp).sort(), ['alg', 'crv', 'kid', 'kty', 'use', 'x'])
  t.match(okp, { kty: 'OKP', crv: 'Ed25519', alg: 'EdDSA', use: 'sig', kid: app.accessTokens.keyRing.signingKey.kid })
  t.same(Object.keys(rsa).sort(), ['alg', 'e', 'kid', 'kty', 'n', 'use'])
  t.match(rsa, { kty: 'RSA', alg: 'RS256', use: 'sig' })
  t.notMatch(response.body, /"(d|p|q|dp|dq|qi)":/, 'no private JWK member')

  const etag = String(response.headers.etag)
  t.match(etag, /^"[A-Za-z0-9_-]{43}"$/, 'an ETag')
  for (const ifNoneMatch of [etag, `W/${etag}`, `"other", ${etag}`, '*']) {
    const revalidated = await app.inject({ method: 'GET', url: '/.well-known/jwks.json', headers: { 'if-none-match': ifNoneMatch } })
    t.same([revalidated.statusCode, revalidated.body, revalidated.headers.etag, revalidated.headers['cache-control']], [304, '', etag, 'public, max-age=300'], `If-None-Match: ${ifNoneMatch}`)
  }
  t.equal((await app.inject({ method: 'GET', url: '/.well-known/jwks.json', headers: { 'if-none-match': '"other"' } })).statusCode, 200, 'another ETag gets the keys')
})

t.test('/me returns the caller in the envelope; logout revokes the token', async (t) => {
  const app = await buildTestApp(t)
  await addUser(app, 'alice', PASSWORD)
  const loginStarted = Date.now()
  const token = await loginToken(app)

  const response = await me(app, `Bearer ${token}`)
  const answered = Date.now()
  t.equal(response.statusCode, 200)
  const body = response.json()
  t.same(Object.keys(body).sort(), ['data', 'message', 'meta'])
  t.equal(body.message, 'Authenticated')
  t.equal(body.data.username, 'alice')
  t.equal(body.data.remainingTime, body.data.expireDate - body.meta.generatedAt)
  // iat is whole seconds: the token can be up to a second older than the login that asked for it
  t.ok(body.data.remainingTime > 899_000 - (answered - loginStarted) && body.data.remainingTime <= 900_000)

  const logout = await app.inject({ method: 'POST', url: '/api/auth/logout', headers: { authorization: `Bearer ${token}` } })
  t.equal(logout.statusCode, 200)
  t.equal(logout.json().message, 'Token revoked')

  const after = await me(app, `Bearer ${token}`)
  t.equal(after.statusCode, 401)
  t.same(after.json(), { message: 'Token has been revoked' })
  t.equal(after.headers['www-authenticate'], 'Bearer realm="auth-service", error="invalid_token", error_description="Token has been revoked"')
  t.equal((await me(app, `Bearer ${await loginToken(app)}`)).statusCode, 200, 'a new login gets a working token')
})

redisTopologyTest(t, 'Redis mode: a token revoked on one replica is refused by every replica at once', async (t, { env }) => {
  const [replicaA, replicaB] = [await buildTestApp(t, env), await buildTestApp(t, env)]
  await addUser(replicaA, 'alice', PASSWORD)
  const token = await loginToken(replicaA)
  t.equal((await me(replicaB, `Bearer ${token}`)).statusCode, 200)
  t.equal((await replicaA.inject({ method: 'POST', url: '/api/auth/logout', headers: { authorization: `Bearer ${token}` } })).statusCode, 200)
  t.equal((await me(replicaB, `Bearer ${token}`)).statusCode, 401)
})

t.test('Redis mode: while Redis is down a token is not accepted unchecked', async (t) => {
  const { redis, env } = await redisMode(t)
  const [replicaA, replicaB] = [await buildTestApp(t, env), await buildTestApp(t, env)]
  await addUser(replicaA, 'alice', PASSWORD)
  const token = await loginToken(replicaA)
  await redis.stop()
  t.equal((await me(replicaB, `Bearer ${await loginToken(replicaA).catch(() => token)}`)).statusCode, 503, 'no revocation check, no pass: 503 while Redis is down')
})

t.test('attacks and bad tokens are 401 with an RFC 6750 challenge, never 500', async (t) => {
  const app = await buildTestApp(t)
  await addUser(app, 'alice', PASSWORD)
  const token = await loginToken(app)
  const [header, payload, signature] = token.split('.')
  const { signingKey } = app.accessTokens.keyRing
  const ourKey = await importPKCS8(signingKey.privateKeyPem, 'EdDSA')
  const now = Math.floor(Date.now() / 1000)
  const claims = { sub: 'alice', jti: 'b6d3c1f0-0000-4000-8000-000000000000' }
  // Signed with the service's own key: everything but the claims and header under test is right. null leaves a claim out.
  const signed = (overrides: { iss?: string | null, aud?: string | null, iat?: number, exp?: number, nbf?: number, typ?: string } = {}) => {
    const jwt = new SignJWT({ ...claims, ...(overrides.nbf !== undefined ? { nbf: overrides.nbf } : {}) })
      .setProtectedHeader({ alg: 'EdDSA', kid: signingKey.kid, typ: overrides.typ ?? 'at+jwt' })
      .setIssuedAt(overrides.iat ?? now)
      .setExpirationTime(overrides.exp ?? now + 900)
    if (overrides.iss !== null) jwt.setIssuer(overrides.iss ?? 'http://localhost:3000')
    if (overrides.aud !== null) jwt.setAudience(overrides.aud ?? 'internal-services')
    return jwt.sign(ourKey)
  }
  const base64url = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url')
  const attacker = await generateKeyPair('EdDSA')
  const attackerJwk = await exportJWK(attacker.publicKey)
  const attackerSigned = (protectedHeader: Record<string, unknown>) =>
    new SignJWT(claims).setProtectedHeader({ alg: 'EdDSA', ...protectedHeader })
      .setIssuer('http://localhost:3000').setAudience('internal-services').setIssuedAt().setExpirationTime('15m').sign(attacker.privateKey)
  const confusedHeader = base64url({ alg: 'HS256', typ: 'JWT', kid: signingKey.kid })
  const tamperedPayload = Buffer.from(Buffer.from(payload, 'base64url').toString().replace('"alice"', '"admin"')).toString('base64url')

  t.equal((await me(app, `Bearer ${await signed()}`)).statusCode, 200, 'control: a well-formed token signed by our key passes')

  const cases: Array<[string, string | undefined, string]> = [
    ['no Authorization header', undefined, 'Missing bearer token'],
    ['another scheme', 'Basic YWxpY2U6cGFzc3dvcmQ=', 'Authorization header must be "Bearer <token>"'],
    ['garbage token', 'Bearer not-a-jwt', 'Token is malformed'],
    ['alg none', `Bearer ${base64url({ alg: 'none', kid: signingKey.kid })}.${payload}.`, 'Token signature or claims are invalid'],
    ['HS256 signed with the public key', `Bearer ${confusedHeader}.${payload}.${createHmac('sha256', signingKey.publicKeyPem).update(`${confusedHeader}.${payload}`).digest('base64url')}`, 'Token signature or claims are invalid'],
    ['kid of no key', `Bearer ${await attackerSigned({ kid: 'no-such-key' })}`, 'Token was not signed by a known key'],
    ['no kid', `Bearer ${await attackerSigned({})}`, 'Token was not signed by a known key'],
    ['embedded jwk header', `Bearer ${await attackerSigned({ kid: signingKey.kid, jwk: attackerJwk })}`, 'Token signature or claims are invalid'],
    ['jku header', `Bearer ${await attackerSigned({ kid: signingKey.kid, jku: 'http://127.0.0.1:1/jwks.json' })}`, 'Token signature or claims are invalid'],
    ['x5u header', `Bearer ${await attackerSigned({ kid: signingKey.kid, x5u: 'http://127.0.0.1:1/cert.pem' })}`, 'Token signature or claims are invalid'],
    ['tampered payload', `Bearer ${header}.${tamperedPayload}.${signature}`, 'Token signature or claims are invalid'],
    ['another issuer', `Bearer ${await signed({ iss: 'someone-else' })}`, 'Token was issued by another issuer or for another audience'],
    ['another audience', `Bearer ${await signed({ aud: 'another-service' })}`, 'Token was issued by another issuer or for another audience'],
    ['expired', `Bearer ${await signed({ iat: now - 1000, exp: now - 100 })}`, 'Token has expired'],
    ['not yet valid', `Bearer ${await signed({ nbf: now + 600 })}`, 'Token is not yet valid'],
    ['no iss', `Bearer ${await signed({ iss: null })}`, 'Token lacks a required claim'],
    ['no aud', `Bearer ${await signed({ aud: null })}`, 'Token lacks a required claim'],
    ['typ JWT', `Bearer ${await signed({ typ: 'JWT' })}`, 'Token is not an access token (typ must be at+jwt)'],
    ['typ of an ID token', `Bearer ${await signed({ typ: 'id_token+jwt' })}`, 'Token is not an access token (typ must be at+jwt)'],
    ['iat in the future', `Bearer ${await signed({ iat: now + 60, exp: now + 900 })}`, 'Token was issued in the future'],
    ['a lifetime longer than configured', `Bearer ${await signed({ iat: now, exp: now + 901 })}`, 'Token lives longer than this service issues tokens for'],
    ['older than its lifetime, whatever its exp', `Bearer ${await signed({ iat: now - 901, exp: now + 600 })}`, 'Token has expired']
  ]
  for (const [name, authorization, message] of cases) {
    const response = await me(app, authorization)
    t.equal(response.statusCode, 401, name)
    t.same(response.json(), { message }, name)
    const challenge = parseChallenge(String(response.headers['www-authenticate']))
    t.same(challenge, authorization === undefined
      ? { scheme: 'Bearer', params: { realm: 'auth-service' } }
      : { scheme: 'Bearer', params: { realm: 'auth-service', error: 'invalid_token', error_description: message.replaceAll('"', "'") } }, `${name}: challenge`)
    t.match(challenge.params.error_description ?? '', /^[\x20-\x21\x23-\x5B\x5D-\x7E]*$/, `${name}: error_description has only the characters RFC 6750 allows`)
  }
  t.throws(() => parseChallenge('Bearer realm="auth-service", error_description="must be "Bearer <token>""'), 'the parser refuses an unescaped inner quote')
  const logout = await app.inject({ method: 'POST', url: '/api/auth/logout', headers: { authorization: 'Bearer' } })
  t.equal(logout.statusCode, 401)
  t.same(parseChallenge(String(logout.headers['www-authenticate'])).params.error_description, "Authorization header must be 'Bearer <token>'", 'logout sends the same challenges')
})

/**
 * One RFC 7235 challenge: auth-scheme 1*SP auth-param *( OWS "," OWS auth-param ), each
 * auth-param token BWS "=" BWS ( token / quoted-string ). Throws on anything else, such as an
 * unescaped quote inside a quoted-string.
 */
function parseChallenge (header: string): { scheme: string, params: Record<string, string> } {
  const TOKEN = "[!#$%&'*+.^_`|~0-9A-Za-z-]+"
  const QUOTED = '"((?:[\\t \\x21\\x23-\\x5B\\x5D-\\x7E\\x80-\\xFF]|\\\\[\\t \\x21-\\x7E\\x80-\\xFF])*)"'
  const scheme = new RegExp(`^(${TOKEN})(?: +|$)`).exec(header)
  if (scheme === null) throw new Error(`no auth-scheme in ${header}`)
  const params: Record<string, string> = {}
  const param = new RegExp(`^(${TOKEN})[ \\t]*=[ \\t]*(?:(${TOKEN})|${QUOTED})[ \\t]*(,[ \\t]*)?`)
  let rest = header.slice(scheme[0].length)
  while (rest !== '') {
    const match = param.exec(rest)
    if (match === null || (match[4] === undefined && match[0].length < rest.length)) throw new Error(`not an RFC 7235 challenge at: ${rest}`)
    params[match[1].toLowerCase()] = match[2] ?? match[3].replace(/\\(.)/g, '$1')
    rest = rest.slice(match[0].length)
  }
  return { scheme: scheme[1], params }
}

t.test('key rotation: old tokens keep verifying until the old key is removed', async (t) => {
  const dir = await tempDir(t)
  const [oldKey, newKey] = [path.join(dir, 'old.pem'), path.join(dir, 'new.pem')]
  await writePrivateKeyFile(oldKey, 'EdDSA')
  await writePrivateKeyFile(newKey, 'EdDSA')
  const jwksKids = async (app: FastifyInstance) =>
    (await app.inject({ method: 'GET', url: '/.well-known/jwks.json' })).json().keys.map((key: { kid: string }) => key.kid).sort()

  const before = await buildTestApp(t, { JWT_PRIVATE_KEY_FILE: oldKey })
  await addUser(before, 'alice', PASSWORD)
  const oldToken = await loginToken(before)
  const [oldKid] = await jwksKids(before)

  // Step 1: publish the new key, still signing with the old one.
  const published = await buildTestApp(t, { JWT_PRIVATE_KEY_FILE: oldKey, JWT_VERIFY_KEY_FILES: newKey, DATA_DIR: before.config.DATA_DIR })
  const newKid = published.accessTokens.keyRing.signingKey.kid === oldKid ? (await jwksKids(published)).find((kid: string) => kid !== oldKid) : undefined
  t.ok(newKid, 'the new key is in the JWKS')
  t.equal((await me(published, `Bearer ${oldToken}`)).statusCode, 200)

  // Step 2: sign with the new key; the old one only verifies.
  const switched = await buildTestApp(t, { JWT_PRIVATE_KEY_FILE: newKey, JWT_VERIFY_KEY_FILES: oldKey, DATA_DIR: before.config.DATA_DIR })
  t.same(await jwksKids(switched), [oldKid, newKid].sort())
  const newToken = await loginToken(switched)
  t.equal((await me(switched, `Bearer ${oldToken}`)).statusCode, 200, 'a live token from the old key still verifies')
  t.equal((await me(published, `Bearer ${newToken}`)).statusCode, 200, 'a replica not yet switched verifies new tokens')

  // Step 3: once every old token has expired, remove the old key.
  const after = await buildTestApp(t, { JWT_PRIVATE_KEY_FILE: newKey, DATA_DIR: before.config.DATA_DIR })
  t.same(await jwksKids(after), [newKid])
  t.equal((await me(after, `Bearer ${oldToken}`)).statusCode, 401, 'the old key no longer verifies')
  t.equal((await me(after, `Bearer ${newToken}`)).statusCode, 200)
})

t.test('a separate process verifies tokens with jose and only the JWKS URL', async (t) => {
  const app = await buildTestApp(t)
  await addUser(app, 'alice', PASSWORD)
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as { port: number }
  const token = await loginToken(app)
  const [header, payload, signature] = token.split('.')
  const tampered = `${header}.${Buffer.from(Buffer.from(payload, 'base64url').toString().replace('"alice"', '"admin"')).toString('base64url')}.${signature}`

  const { stdout } = await promisify(execFile)(process.execPath, [
    'test/fixtures/verify-with-jwks.mjs', `http://127.0.0.1:${port}/.well-known/jwks.json`, 'http://localhost:3000', 'internal-services', token, tampered
  ])
  const [valid, forged] = stdout.trim().split('\n').map((line) => JSON.parse(line))
  t.same(valid, { ok: true, sub: 'alice' })
  t.same(forged, { ok: false, code: 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED' })
})
