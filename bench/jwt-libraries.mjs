// JWT library benchmark: the access-token work of a token grant (sign) and of a bearer request
// or an introspection (verify), in this process, no server.
//
// For EdDSA and ES256, measures tokens signed and verified per CPU second by three libraries:
// fast-jwt (the service's library; createSigner/createVerifier built once per key), jose
// (SignJWT/jwtVerify with keys imported once), and node:crypto by hand (the header and key object
// built once; one JSON serialisation and one signature per token), the floor under any library;
// and by the service's own AccessTokens of dist/ (issueClientToken, and verify with its claim
// rules and an in-process revocation list), to show what the service adds to its library.
// Each token is an RFC 9068 access token with fresh claims (iat, exp, jti); each verification
// checks what the service checks: signature, pinned algorithm, typ at+jwt, iss, the required claims,
// exp with clock tolerance and the lifetime. One operation in flight, as a request handler runs
// them; per CPU second of this process (its threads included, where jose's WebCrypto may work),
// so that a machine shared with other work changes little. Measurements take turns in short
// slices; prints every round, the median of rounds, and each candidate's median as a ratio to
// node:crypto. BENCH_ROUNDS (5) overrides the number of rounds.
import { createPrivateKey, createPublicKey, generateKeyPairSync, randomUUID, sign, verify } from 'node:crypto'
import { availableParallelism } from 'node:os'
import { createSigner, createVerifier } from 'fast-jwt'
import { SignJWT, importPKCS8, importSPKI, jwtVerify } from 'jose'
import { AccessTokens } from '../dist/tokens/access-tokens.js'
import { signingKeyFromPem } from '../dist/tokens/keys.js'
import { LocalRevocationList } from '../dist/storage/memory/revocations.js'
import { formatRate, formatRatio, median, perCpuSecond, positiveInteger, printReport, progress, runBenchmark, takeTurns, tally } from './harness.mjs'

const ROUNDS = positiveInteger('BENCH_ROUNDS', 5)
const TURNS = 2
const SLICE_MS = 120
const TAG = 'bench:jwt'
const ISSUER = 'https://auth.example.com'
const TTL_SECONDS = 900
const CLOCK_TOLERANCE_SECONDS = 5
const TYP = 'at+jwt'
const REQUIRED_CLAIMS = ['iss', 'sub', 'aud', 'iat', 'exp', 'jti', 'client_id', 'scope']

const GRANT = { clientId: 'bench-client', audience: 'https://orders.internal', scope: 'orders:read', ttlSeconds: TTL_SECONDS }

/** A client token's claims, fresh for each signature as a grant makes them. */
function clientClaims () {
  const iat = Math.floor(Date.now() / 1000)
  return { iss: ISSUER, sub: GRANT.clientId, client_id: GRANT.clientId, aud: GRANT.audience, scope: GRANT.scope, iat, exp: iat + GRANT.ttlSeconds, jti: randomUUID() }
}

const KEY_PAIRS = {
  EdDSA: () => generateKeyPairSync('ed25519'),
  ES256: () => generateKeyPairSync('ec', { namedCurve: 'P-256' })
}

/** node:crypto's digest and signature encoding per algorithm. */
const NODE_SIGNATURE = { EdDSA: { digest: null }, ES256: { digest: 'sha256', dsaEncoding: 'ieee-p1363' } }

const base64url = (value) => Buffer.from(JSON.stringify(value)).toString('base64url')

/** By hand: the header and key objects once, then one serialisation and one signature (or check) per token. */
function nodeCrypto ({ algorithm, kid: signingKid, privateKeyPem, publicKeyPem }) {
  const header = base64url({ alg: algorithm, typ: TYP, kid: signingKid })
  const { digest, dsaEncoding } = NODE_SIGNATURE[algorithm]
  const privateKey = createPrivateKey(privateKeyPem)
  const publicKey = createPublicKey(publicKeyPem)
  return {
    sign: () => {
      const input = `${header}.${base64url(clientClaims())}`
      return `${input}.${sign(digest, Buffer.from(input), { key: privateKey, dsaEncoding }).toString('base64url')}`
    },
    verify: (token) => {
      const [encodedHeader, encodedClaims, signature] = token.split('.')
      const { alg, typ, kid } = JSON.parse(Buffer.from(encodedHeader, 'base64url').toString())
      if (kid !== signingKid || alg !== algorithm || typ !== TYP) throw new Error('header')
      if (!verify(digest, Buffer.from(`${encodedHeader}.${encodedClaims}`), { key: publicKey, dsaEncoding }, Buffer.from(signature, 'base64url'))) throw new Error('signature')
      const claims = JSON.parse(Buffer.from(encodedClaims, 'base64url').toString())
      const now = Date.now() / 1000
      if (claims.iss !== ISSUER || REQUIRED_CLAIMS.some((claim) => !(claim in claims))) throw new Error('claims')
      if (claims.exp + CLOCK_TOLERANCE_SECONDS < now || claims.iat + TTL_SECONDS < now) throw new Error('expired')
      return claims
    }
  }
}

function fastJwt ({ algorithm, kid, privateKeyPem, publicKeyPem }) {
  const sign = createSigner({ key: privateKeyPem, algorithm, kid, header: { typ: TYP } })
  return {
    sign: () => sign(clientClaims()),
    verify: createVerifier({
      key: publicKeyPem,
      algorithms: [algorithm],
      checkTyp: TYP,
      allowedIss: ISSUER,
      requiredClaims: REQUIRED_CLAIMS,
      clockTolerance: CLOCK_TOLERANCE_SECONDS * 1000,
      maxAge: TTL_SECONDS * 1000
    })
  }
}

async function jose ({ algorithm, kid, privateKeyPem, publicKeyPem }) {
  const privateKey = await importPKCS8(privateKeyPem, algorithm)
  const publicKey = await importSPKI(publicKeyPem, algorithm)
  const options = { algorithms: [algorithm], typ: TYP, issuer: ISSUER, requiredClaims: REQUIRED_CLAIMS, clockTolerance: CLOCK_TOLERANCE_SECONDS, maxTokenAge: TTL_SECONDS }
  return {
    sign: () => new SignJWT(clientClaims()).setProtectedHeader({ alg: algorithm, typ: TYP, kid }).sign(privateKey),
    verify: async (token) => (await jwtVerify(token, publicKey, options)).payload
  }
}

/** The service's access tokens on this key, one client in memory (client tokens need no user), as the app signs and verifies them. */
function service ({ signingKey }) {
  const keys = { keyRing: { signingKey, verificationKeys: new Map([[signingKey.kid, signingKey]]) }, jwksMaxAgeSeconds: 300 }
  const accessTokens = new AccessTokens(keys, { issuer: ISSUER, userAudience: 'internal-services', userTokenTtlSeconds: TTL_SECONDS, exchangeMaxDepth: 3 }, { users: { find: async () => undefined }, clients: { find: async () => ({ clientId: GRANT.clientId, createdAt: 0 }) }, revocations: new LocalRevocationList() })
  return {
    sign: () => accessTokens.issueClientToken(GRANT).accessToken,
    verify: (token) => accessTokens.verify(token, 'client')
  }
}

const CANDIDATES = [
  { name: 'node:crypto', make: nodeCrypto },
  { name: 'fast-jwt', make: fastJwt },
  { name: 'jose', make: jose },
  { name: 'service (fast-jwt)', make: service }
]

/** Runs `operation` one at a time for a slice (awaited when it is asynchronous), adding the count, the wall and the CPU time to `into`. */
async function slice (operation, into) {
  const cpuBefore = process.cpuUsage()
  const start = performance.now()
  let count = 0
  while (performance.now() - start < SLICE_MS) {
    const result = operation()
    if (result instanceof Promise) await result
    count++
  }
  const cpu = process.cpuUsage(cpuBefore)
  into.count += count
  into.seconds += (performance.now() - start) / 1000
  into.cpuSeconds += (cpu.user + cpu.system) / 1e6
}

async function main () {
  const measured = []
  for (const algorithm of Object.keys(KEY_PAIRS)) {
    const { privateKey, publicKey } = KEY_PAIRS[algorithm]()
    const privateKeyPem = privateKey.export({ type: 'pkcs8', format: 'pem' })
    const publicKeyPem = publicKey.export({ type: 'spki', format: 'pem' })
    const signingKey = signingKeyFromPem(privateKeyPem, algorithm, 'bench')
    const key = { algorithm, kid: signingKey.kid, privateKeyPem, publicKeyPem, signingKey }
    const reference = nodeCrypto(key)
    const token = reference.sign()
    for (const { name, make } of CANDIDATES) {
      const candidate = await make(key)
      // Each candidate accepts the reference's token and makes one the reference accepts: the same work is compared.
      await candidate.verify(token)
      reference.verify(await candidate.sign())
      measured.push({ algorithm, operation: 'sign', candidate: name, run: candidate.sign })
      measured.push({ algorithm, operation: 'verify', candidate: name, run: () => candidate.verify(token) })
    }
  }

  progress(TAG, 'warming up')
  for (const { run } of measured) await slice(run, tally())
  const rounds = []
  for (let round = 1; round <= ROUNDS; round++) {
    progress(TAG, `round ${round}/${ROUNDS}: ${measured.length} measurements, ${TURNS} x ${SLICE_MS} ms each, taking turns`)
    const tallies = measured.map(() => tally())
    await takeTurns(TURNS, measured.map(({ run }, i) => () => slice(run, tallies[i])))
    rounds.push(tallies.map(perCpuSecond))
  }

  const column = (i) => rounds.map((rates) => rates[i])
  const rows = []
  const summaries = []
  for (const algorithm of Object.keys(KEY_PAIRS)) {
    for (const operation of ['sign', 'verify']) {
      const index = (name) => measured.findIndex((m) => m.algorithm === algorithm && m.operation === operation && m.candidate === name)
      const floor = column(index('node:crypto'))
      const ratios = []
      for (const { name } of CANDIDATES) {
        rows.push({ label: `${algorithm} ${operation} per CPU s: ${name}`, values: column(index(name)), format: formatRate })
      }
      for (const { name } of CANDIDATES.slice(1)) {
        const ratio = column(index(name)).map((value, i) => value / floor[i])
        rows.push({ label: `   ${name} / node:crypto`, values: ratio, format: formatRatio })
        ratios.push(`${name} ${formatRatio(median(ratio))}`)
      }
      summaries.push(`${algorithm} ${operation}: ${ratios.join(', ')} of node:crypto (${formatRate(median(floor))}/CPU s)`)
    }
  }
  printReport([
    `JWT library benchmark: ${ROUNDS} rounds, each measurement ${TURNS} x ${SLICE_MS} ms per round taking turns; medians of rounds`,
    `node ${process.version}, ${availableParallelism()} CPUs; RFC 9068 client tokens, one operation in flight, per CPU second of this process`
  ].join('\n'), ROUNDS, rows, summaries)
}

await runBenchmark(TAG, main)
