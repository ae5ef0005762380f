import t from 'tap'
import type { Client } from '../../src/clients/client.ts'
import { OAuthError } from '../../src/http/oauth-errors.ts'
import { decideExchange, exchangeSubject, type SubjectClaims } from '../../src/oauth/token-exchange.ts'
import type { AccessTokens } from '../../src/tokens/access-tokens.ts'

/** mulberry32: the same cases on every run, so a failure names a case that can be replayed. */
function prng (seed: number): () => number {
  return () => {
    seed = (seed + 0x6D2B79F5) | 0
    let x = Math.imul(seed ^ (seed >>> 15), 1 | seed)
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}

const SCOPES = ['a:read', 'a:write', 'b:read', 'b:write', 'c:read', 'c:admin']
const RESOURCES = ['https://a.internal', 'https://b.internal', 'https://c.internal', 'internal-services']
const NOW = 1_800_000_000

t.test('over random clients, subject tokens and requests: the scope, audience and end are never wider than the rules allow', async (t) => {
  const random = prng(19)
  const some = <T>(items: T[]) => items.filter(() => random() < 0.5)
  let granted = 0
  for (let i = 0; i < 500; i++) {
    const client = {
      clientId: 'caller',
      scopes: some(SCOPES).concat('a:read'),
      audiences: ['https://own.internal'],
      exchangeAudiences: some(RESOURCES.slice(0, 3)).concat('https://a.internal'),
      ...(random() < 0.3 ? { tokenTtlSeconds: 60 + Math.floor(random() * 3600) } : {})
    } as Client
    const loginToken = random() < 0.4
    const depth = Math.floor(random() * 4)
    const subject = {
      iss: 'x',
      sub: 'alice',
      aud: 'internal-services',
      iat: NOW - 10,
      exp: NOW + 1 + Math.floor(random() * 3000),
      jti: 'j',
      ...(loginToken ? {} : { client_id: 'prev', scope: some(SCOPES).join(' '), derived_from: Array.from({ length: depth }, () => ({ jti: 'p', iat: NOW })) })
    } as SubjectClaims
    const request = {
      ...(random() < 0.7 ? { scope: some(SCOPES.concat('z:unknown')).join(' ') } : {}),
      ...(random() < 0.6 ? { resource: some(RESOURCES) } : {}),
      ...(random() < 0.3 ? { audience: some(RESOURCES) } : {})
    }
    const settings = { defaultTtlSeconds: 900, userAudience: 'internal-services', maxDepth: 3, now: NOW }
    const subjectScopes = 'scope' in subject ? subject.scope.split(' ') : client.scopes
    const allowed = client.scopes.filter((scope) => subjectScopes.includes(scope))
    const asked = request.scope?.split(' ').filter((scope) => scope !== '')
    const targets = [...request.resource ?? [], ...request.audience ?? []]
    const expected = depth + 1 > 3 && !loginToken
      ? 'invalid_request'
      : targets.some((target) => !client.exchangeAudiences!.includes(target))
        ? 'invalid_target'
        : (asked ?? allowed).length === 0 || (asked ?? []).some((scope) => !allowed.includes(scope)) ? 'invalid_scope' : 'granted'
    let outcome: string
    try {
      const decision = decideExchange(client, subject, request, settings)
      outcome = 'granted'
      granted++
      const scopes = decision.scope.split(' ')
      if (!scopes.every((scope) => allowed.includes(scope))) t.fail(`case ${i}: scope ${decision.scope} wider than ${allowed.join(' ')}`)
      if (![decision.audience].flat().every((target) => client.exchangeAudiences!.includes(target))) t.fail(`case ${i}: audience ${String(decision.audience)}`)
      if (decision.exp > subject.exp || decision.exp > NOW + (client.tokenTtlSeconds ?? 900)) t.fail(`case ${i}: exp ${decision.exp} later than allowed`)
    } catch (error) {
      if (!(error instanceof OAuthError)) throw error
      outcome = error.error
    }
    if (outcome !== expected) t.fail(`case ${i}: ${outcome}, expected ${expected}`, { client, subject, request })
  }
  t.ok(granted > 25 && granted < 475, `both grants and refusals among the cases (${granted} granted)`)
})

t.test('a client without an exchange policy cannot exchange; a token whose may_act names another is not exchanged', async (t) => {
  const subject = { iss: 'x', sub: 'alice', aud: 'internal-services', iat: NOW, exp: NOW + 60, jti: 'j' } as SubjectClaims
  const settings = { defaultTtlSeconds: 900, userAudience: 'internal-services', maxDepth: 3, now: NOW }
  t.throws(() => decideExchange({ clientId: 'x', scopes: ['a'], audiences: ['https://a'] } as Client, subject, {}, settings), new OAuthError(400, 'unauthorized_client', 'This client is not registered to exchange tokens (clients add --exchange-audience)'))
  t.throws(() => decideExchange({ clientId: 'x', scopes: ['a'], audiences: ['https://a'], exchangeAudiences: [] } as unknown as Client, subject, {}, settings), new OAuthError(400, 'unauthorized_client', 'This client is not registered to exchange tokens (clients add --exchange-audience)'))

  // This service issues no may_act; a token that carries one (RFC 8693 §4.4) is honoured all the same.
  const withMayAct = (mayAct: unknown) => ({ claimedKind: () => 'user', verify: async () => ({ ...subject, may_act: mayAct }) }) as unknown as AccessTokens
  const orders = { clientId: 'orders', scopes: ['a'], audiences: ['https://a'], serves: ['internal-services'], exchangeAudiences: ['https://b'] } as Client
  const request = { subject_token: 'token', subject_token_type: 'urn:ietf:params:oauth:token-type:access_token' }
  const mayActRefused = new OAuthError(400, 'invalid_request', 'subject_token\'s may_act does not name this client')
  await t.rejects(exchangeSubject(withMayAct({ sub: 'billing' }), orders, request), mayActRefused)
  await t.rejects(exchangeSubject(withMayAct('orders'), orders, request), mayActRefused)
  t.match(await exchangeSubject(withMayAct({ sub: 'orders' }), orders, request), { sub: 'alice' })
})
