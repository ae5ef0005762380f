import { decodeJwt, errors as joseErrors, jwtVerify, type JWTVerifyGetKey } from 'jose'
import { ASSERTION_ALGORITHMS, authKind, CLIENT_ID_PATTERN, type Client } from '../clients/client.ts'
import type { ClientRepository } from '../clients/repository.ts'
import { matchesSecret } from '../clients/secrets.ts'
import { KeySetUnavailable, type AssertionKeys } from './assertion-keys.ts'
import { invalidClient, OAuthError, retryAfterSeconds, slowDown } from '../http/oauth-errors.ts'
import type { WindowLimit } from '../limits/rolling-window.ts'
import type { TokenEndpointStore } from './token-endpoint-store.ts'

/** RFC 7523 §2.2: the client_assertion_type of a JWT client assertion. */
export const JWT_BEARER_ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer'
/** Clock skew allowed between the client and this service. */
const CLOCK_TOLERANCE_SECONDS = 30
/**
 * How much longer than the verifier accepts an assertion its `jti` is remembered: the verifier
 * reads its clock to the whole second, and the clocks of replicas and Redis may differ.
 */
const REPLAY_MARGIN_SECONDS = 60

export type ClientAuthMethod = 'client_secret_basic' | 'client_secret_post' | 'private_key_jwt'

/** What the request presents to authenticate its client, before anything is checked. */
export type PresentedCredentials =
  | { method: 'client_secret_basic' | 'client_secret_post', clientId: string, secret: string }
  | { method: 'private_key_jwt', clientId: string, assertion: string }

/** The client authentication parameters of a form (RFC 6749 §2.3.1, RFC 7523 §2.2). */
export interface ClientAuthForm {
  client_id?: string
  client_secret?: string
  client_assertion_type?: string
  client_assertion?: string
}

const failed = () => invalidClient('Client authentication failed')

/** The answer to an address past its failure limit, whether its credentials were right or wrong. */
export const tooManyFailures = (waitMs: number) => slowDown('Too many failed client authentications from this address', waitMs)

/** RFC 6749 §2.3.1: id and secret are form-encoded before they are joined for Basic. */
function formDecode (value: string): string {
  return decodeURIComponent(value.replace(/\+/g, '%20'))
}

/**
 * The credentials a request presents: HTTP Basic, client_id and client_secret in the form, or a
 * client assertion (whose client is the form's client_id or else the assertion's `sub`).
 * More than one way at once is an invalid_request (RFC 6749 §2.3); none is an invalid_client.
 */
export function presentedCredentials (authorization: string | undefined, form: ClientAuthForm): PresentedCredentials {
  const credentials = presented(authorization, form)
  // No client can have such an id: refused without a lookup (and never made into a Redis key).
  if (!CLIENT_ID_PATTERN.test(credentials.clientId)) throw failed()
  return credentials
}

function presented (authorization: string | undefined, form: ClientAuthForm): PresentedCredentials {
  const basic = authorization !== undefined && /^basic /i.test(authorization)
  const ways = [basic, form.client_secret !== undefined, form.client_assertion !== undefined || form.client_assertion_type !== undefined].filter(Boolean).length
  if (ways > 1) throw new OAuthError(400, 'invalid_request', 'Use exactly one client authentication method')
  if (basic) {
    const encoded = authorization.slice(6).trim()
    const decoded = /^[A-Za-z0-9+/]+={0,2}$/.test(encoded) ? Buffer.from(encoded, 'base64').toString('utf8') : ''
    const colon = decoded.indexOf(':')
    if (colon < 0) throw invalidClient('Authorization header must be Basic base64(client_id:client_secret)')
    let clientId: string, secret: string
    try {
      [clientId, secret] = [formDecode(decoded.slice(0, colon)), formDecode(decoded.slice(colon + 1))]
    } catch {
      throw invalidClient('Client id and secret in the Authorization header must be form-encoded')
    }
    if (form.client_id !== undefined && form.client_id !== clientId) throw new OAuthError(400, 'invalid_request', 'client_id differs from the client in the Authorization header')
    return { method: 'client_secret_basic', clientId, secret }
  }
  if (form.client_secret !== undefined) {
    if (form.client_id === undefined) throw new OAuthError(400, 'invalid_request', 'client_secret requires client_id')
    return { method: 'client_secret_post', clientId: form.client_id, secret: form.client_secret }
  }
  if (form.client_assertion !== undefined || form.client_assertion_type !== undefined) {
    if (form.client_assertion_type !== JWT_BEARER_ASSERTION_TYPE) throw new OAuthError(400, 'invalid_request', `client_assertion_type must be ${JWT_BEARER_ASSERTION_TYPE}`)
    if (form.client_assertion === undefined) throw new OAuthError(400, 'invalid_request', 'client_assertion is missing')
    let clientId = form.client_id
    if (clientId === undefined) {
      try {
        clientId = decodeJwt(form.client_assertion).sub
      } catch {
        throw failed()
      }
    }
    if (clientId === undefined) throw invalidClient('The client assertion has no sub; send client_id')
    return { method: 'private_key_jwt', clientId, assertion: form.client_assertion }
  }
  throw invalidClient('Client authentication is required: HTTP Basic, client_secret_post or a client assertion')
}

/** The errors jose raises only once the signature has verified: the caller holds the key, so it may learn what is wrong. */
const CLAIM_ERRORS = new Set([joseErrors.JWTExpired.code, joseErrors.JWTClaimValidationFailed.code])

/** How the authenticator is limited: failures per client address, how far ahead an assertion may expire. */
export interface ClientAuthLimits {
  /** CLIENT_AUTH_FAILURE_*. */
  failures: WindowLimit
  /** CLIENT_ASSERTION_MAX_LIFETIME_SECONDS. */
  maxAssertionLifetimeSeconds: number
}

/**
 * Authenticates the client a request presents, the same way at every OAuth endpoint. Failed
 * authentications are limited per client address (CLIENT_AUTH_FAILURE_*, counted as the login
 * limit counts addresses): an address learns the outcome of at most that many failures per window,
 * however many attempts it makes at once. Past the limit the answer is 429 whatever the
 * credentials, before an assertion's signature is checked (see #lookUp); a failure is recorded only while the window has room, in one atomic step
 * after the check (else 429); and a success answers only once the window is seen to have room
 * still (confirm, or the grant's admission), else 429, so a right guess among a concurrent burst
 * is not told apart either. Successes are never held back, however many at once from one address,
 * and a client id cannot be locked out by guessing from elsewhere. Secrets are compared as
 * digests in constant time; assertions are verified with the client's keys (private_key_jwt:
 * `iss` = `sub` = client id, `exp` at most CLIENT_ASSERTION_MAX_LIFETIME_SECONDS ahead, `jti`
 * single use for as long as the assertion could be accepted) or its federated issuer's (workload
 * identity: that issuer and subject; such tokens are reused until they expire, like any projected
 * token). Either way `aud` is this service's issuer identifier as its sole value
 * (draft-ietf-oauth-rfc7523bis).
 */
export class ClientAuthenticator {
  readonly #store: TokenEndpointStore
  readonly #clients: ClientRepository
  readonly #keys: AssertionKeys
  readonly #issuer: string
  readonly #failureLimit: WindowLimit
  readonly #maxAssertionLifetimeSeconds: number

  constructor (store: TokenEndpointStore, clients: ClientRepository, keys: AssertionKeys, issuer: string, limits: ClientAuthLimits) {
    this.#store = store
    this.#clients = clients
    this.#keys = keys
    this.#issuer = issuer
    this.#failureLimit = limits.failures
    this.#maxAssertionLifetimeSeconds = limits.maxAssertionLifetimeSeconds
  }

  /**
   * The client the credentials prove, looked up beside the address's failures. Throws slow_down
   * (429) while the address has failed too often, else invalid_client (401) unless the client
   * exists and the credentials prove it; such a failure counts against the address, or is a 429
   * when the window filled meanwhile. The client returned is not yet to be told it succeeded:
   * confirm first, or admit its grant (GrantLimit), which confirms too.
   */
  async authenticate (credentials: PresentedCredentials, clientAddress: string): Promise<Client> {
    const client = await this.#lookUp(credentials, clientAddress)
    try {
      return await this.#prove(client, credentials)
    } catch (error) {
      if (error instanceof OAuthError && error.statusCode === 401) {
        const { waitMs } = await this.#store.recordFailure(clientAddress, this.#failureLimit)
        if (waitMs > 0) throw tooManyFailures(waitMs)
      }
      throw error
    }
  }

  /**
   * The client the credentials name. An assertion's client is looked up beside a look at the
   * address's failures, and refused at once past the limit: its check costs a signature, perhaps a
   * key set's fetch. A secret's costs less than that look (one digest), so its client is read
   * alone: past the limit, whatever the check finds is answered 429 all the same, a failure by
   * recordFailure, a success by the last look that precedes every answer. A Redis round trip saved
   * on every grant, the look being a script.
   */
  async #lookUp (credentials: PresentedCredentials, clientAddress: string): Promise<Client | undefined> {
    if (credentials.method !== 'private_key_jwt') return await this.#clients.find(credentials.clientId)
    const { client, failures } = await this.#store.lookUpClient(credentials.clientId, clientAddress, this.#failureLimit)
    if (failures.waitMs > 0) throw tooManyFailures(failures.waitMs)
    return client
  }

  /** Throws slow_down (429) when the address's failures have had their fill: before an authenticated request is answered. */
  async confirm (clientAddress: string): Promise<void> {
    const { waitMs } = await this.#store.peekFailures(clientAddress, this.#failureLimit)
    if (waitMs > 0) throw tooManyFailures(waitMs)
  }

  /** Throws invalid_client (401) unless `client` exists and the credentials prove it. */
  async #prove (client: Client | undefined, credentials: PresentedCredentials): Promise<Client> {
    if (client === undefined) throw failed()
    const kind = authKind(client)
    if (credentials.method !== 'private_key_jwt') {
      if (kind !== 'client_secret' || !matchesSecret(client.secrets ?? [], credentials.secret, Date.now())) throw failed()
      return client
    }
    const keys = this.#keys.for(client)
    if (keys === undefined) throw failed()
    if (kind === 'workload_identity') {
      const { issuer, subject } = client.federated!
      await this.#verify(credentials.assertion, keys, { issuer, subject })
      return client
    }
    const { exp, jti } = await this.#verify(credentials.assertion, keys, { issuer: client.clientId, subject: client.clientId, requiredClaims: ['exp', 'jti'] })
    if (exp! > Date.now() / 1000 + this.#maxAssertionLifetimeSeconds + CLOCK_TOLERANCE_SECONDS) {
      throw invalidClient(`Client assertion expires more than ${this.#maxAssertionLifetimeSeconds} seconds ahead`)
    }
    // Whole milliseconds (Redis's PXAT takes no fraction), and well after the verifier's last
    // acceptance at exp + the tolerance (+ up to a second, its clock read to the whole second).
    const rememberedUntil = Math.ceil((exp! + CLOCK_TOLERANCE_SECONDS + REPLAY_MARGIN_SECONDS) * 1000)
    if (!await this.#store.claimAssertionId(client.clientId, jti!, rememberedUntil)) {
      throw invalidClient('Client assertion has already been used (jti)')
    }
    return client
  }

  async #verify (assertion: string, keys: JWTVerifyGetKey, expected: { issuer: string, subject: string, requiredClaims?: string[] }) {
    try {
      const { payload } = await jwtVerify(assertion, keys, {
        ...expected,
        algorithms: [...ASSERTION_ALGORITHMS],
        clockTolerance: CLOCK_TOLERANCE_SECONDS,
        requiredClaims: [...(expected.requiredClaims ?? []), 'exp']
      })
      // draft-ietf-oauth-rfc7523bis: the issuer is the sole audience. Not the token endpoint URL (an attacker's metadata
      // may name ours), nor ours beside another's (that other could replay it here). A one-member array is as the kubelet writes it.
      const audiences = [payload.aud].flat()
      if (audiences.length !== 1 || audiences[0] !== this.#issuer) {
        throw new joseErrors.JWTClaimValidationFailed(`"aud" must be the issuer ${this.#issuer}, as its sole value`, payload, 'aud', 'check_failed')
      }
      return payload
    } catch (error) {
      const code = (error as { code?: string }).code ?? ''
      if (CLAIM_ERRORS.has(code)) throw invalidClient(`Client assertion: ${(error as Error).message}`)
      // Not a failed authentication, so not counted against the address: the credentials were never
      // checked, and counting would lock the client's callers out past its key host's outage. The
      // key set's back-off, not the limit, keeps such requests from costing a fetch each.
      if (error instanceof KeySetUnavailable) {
        throw new OAuthError(503, 'temporarily_unavailable', 'The key set of this client could not be fetched; try again shortly',
          { 'retry-after': String(retryAfterSeconds(error.retryAfterMs)) })
      }
      throw failed()
    }
  }
}
