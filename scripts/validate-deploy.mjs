#!/usr/bin/env node
// Checks the deployment files without a cluster or a Docker engine:
//   k8s/base and every k8s/overlays/*   rendered with `kubectl kustomize`; every object checked against
//                                       the Kubernetes API schema (kubernetes-models), unknown fields
//                                       included; no Secret may be rendered (keys are made by hand),
//                                       and no ConfigMap may hold a Redis URL or a password
//   k8s/base/secret.example.yaml        the same schema check (it is in no kustomization)
//   docker-compose.yml                  `docker-compose config -q`; the service's containers (auth,
//                                       keygen) read-only, with cap_drop ALL and no-new-privileges;
//                                       no password in it (only *_FILE settings name one)
//   deploy/nginx/nginx.conf             `nginx -t`, from a temp dir with a loopback upstream.conf
//   Dockerfile                          dockerfilelint
// Prints one line per checked item; on any problem lists them all and exits 1.
//
// Usage: node scripts/validate-deploy.mjs
// Needs: kubectl, docker-compose, nginx on PATH; the devDependencies installed (dockerfilelint included).

import { spawnSync } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseAllDocuments } from 'yaml'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')

const results = []
const pass = (item, detail) => results.push({ ok: true, item, detail })
const fail = (item, detail) => results.push({ ok: false, item, detail })

/** Runs a command in the repo root; a missing binary becomes a failed result, not a crash. */
function run (command, args, options = {}) {
  const res = spawnSync(command, args, { cwd: root, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, ...options })
  if (res.error) {
    return { ok: false, output: res.error.code === 'ENOENT' ? `${command} is not installed` : res.error.message }
  }
  return { ok: res.status === 0, stdout: res.stdout, output: `${res.stdout ?? ''}${res.stderr ?? ''}`.trim() }
}

// --- Kubernetes objects --------------------------------------------------------------------------

const modelModules = new Map()

/** The kubernetes-models class for an object: its module path is the apiVersion itself. */
async function modelClass (apiVersion, kind) {
  if (!modelModules.has(apiVersion)) {
    modelModules.set(apiVersion, await import(`kubernetes-models/${apiVersion}`).catch(() => null))
  }
  const mod = modelModules.get(apiVersion)
  return mod && typeof mod[kind] === 'function' ? mod[kind] : null
}

/**
 * kubernetes-models ships its schemas only as compiled validators, and none of them sets
 * additionalProperties: false, so validate() accepts any unknown field. The compiled code does look
 * up every property its schema defines, though, so a proxy records those lookups: a field of an
 * object the validator inspected that it never looked up is not in the schema. Objects whose keys
 * the validator enumerates (maps such as labels or ConfigMap data) accept any key, and objects it
 * never looks into (free-form schemas) are not judged.
 */
function trackLookups (document) {
  const seen = new Map()
  const wrap = (value) => {
    if (value === null || typeof value !== 'object') return value
    let entry = seen.get(value)
    if (!entry) {
      const lookups = { keys: new Set(), enumerated: false }
      const proxy = new Proxy(value, {
        get (target, key, receiver) {
          if (typeof key === 'string') lookups.keys.add(key)
          return wrap(Reflect.get(target, key, receiver))
        },
        has (target, key) {
          if (typeof key === 'string') lookups.keys.add(key)
          return Reflect.has(target, key)
        },
        ownKeys (target) {
          lookups.enumerated = true
          return Reflect.ownKeys(target)
        }
      })
      entry = { proxy, lookups }
      seen.set(value, entry)
    }
    return entry.proxy
  }
  return { proxy: wrap(document), lookupsOf: (value) => seen.get(value)?.lookups }
}

function unknownFields (value, lookupsOf, path = '') {
  if (value === null || typeof value !== 'object') return []
  if (Array.isArray(value)) return value.flatMap((item, i) => unknownFields(item, lookupsOf, `${path}/${i}`))
  const lookups = lookupsOf(value)
  const judged = lookups && !lookups.enumerated && lookups.keys.size > 0
  return Object.entries(value).flatMap(([key, child]) =>
    judged && !lookups.keys.has(key)
      ? [`${path}/${key}`]
      : unknownFields(child, lookupsOf, `${path}/${key}`))
}

/** Schema problems of one object, as "path message" strings; empty when it is valid. */
async function schemaProblems (object) {
  const { apiVersion, kind } = object
  const Model = await modelClass(apiVersion, kind)
  if (!Model) return [`no Kubernetes API type ${apiVersion} ${kind}`]
  const { proxy, lookupsOf } = trackLookups(object)
  const problems = []
  try {
    Model.prototype.validate.call(proxy)
  } catch (err) {
    if (!Array.isArray(err.errors)) throw err
    problems.push(...err.errors.map((e) => `${e.instancePath || '/'} ${e.message}`))
  }
  problems.push(...unknownFields(object, lookupsOf).map((path) => `${path} is not a field of ${apiVersion} ${kind}`))
  return problems
}

function objectName (object) {
  const { metadata = {} } = object
  return `${object.apiVersion} ${object.kind} ${metadata.namespace ? `${metadata.namespace}/` : ''}${metadata.name}`
}

/** Validates every object of a multi-document YAML text; `source` names it in the report. */
async function checkManifests (source, text, { secretsAllowed }) {
  const documents = parseAllDocuments(text)
  let count = 0
  for (const document of documents) {
    if (document.errors.length > 0) {
      fail(source, `YAML: ${document.errors.map((e) => e.message).join('; ')}`)
      continue
    }
    const object = document.toJS()
    if (object === null) continue
    count++
    if (typeof object !== 'object' || typeof object.apiVersion !== 'string' || typeof object.kind !== 'string') {
      fail(source, `document ${count} has no apiVersion/kind`)
      continue
    }
    const name = objectName(object)
    const problems = await schemaProblems(object)
    if (object.kind === 'Secret' && !secretsAllowed) {
      problems.push('renders a Secret: keys and certificates are created by hand, never kept in k8s/')
    }
    if (object.kind === 'ConfigMap') problems.push(...credentialsIn(object.data ?? {}))
    if (problems.length > 0) fail(`${source}: ${name}`, problems.join('\n'))
    else pass(`${source}: ${name}`, 'valid')
  }
  if (count === 0) fail(source, 'no objects')
}

async function checkKustomizations () {
  const overlays = join('k8s', 'overlays')
  const dirs = [join('k8s', 'base'), ...readdirSync(join(root, overlays), { withFileTypes: true })
    .filter((entry) => entry.isDirectory())
    .map((entry) => join(overlays, entry.name))
    .sort()]
  for (const dir of dirs) {
    const rendered = run('kubectl', ['kustomize', dir])
    if (!rendered.ok) fail(dir, `kubectl kustomize failed:\n${rendered.output}`)
    else await checkManifests(dir, rendered.stdout, { secretsAllowed: false })
  }
  const example = join('k8s', 'base', 'secret.example.yaml')
  await checkManifests(example, readFileSync(join(root, example), 'utf8'), { secretsAllowed: true })
}

/**
 * Settings that would put a Redis credential where anyone who may read the object or file sees it:
 * REDIS_URL (a managed Redis' URL carries its password) and any *PASSWORD setting (*_PASSWORD_FILE is fine).
 */
function credentialsIn (settings) {
  return Object.keys(settings)
    .filter((key) => key === 'REDIS_URL' || /PASSWORD$/.test(key))
    .map((key) => `${key} belongs in a Secret (passwords as files: *_PASSWORD_FILE)`)
}

// --- Compose, nginx, Dockerfile --------------------------------------------------------------------

/** The hardening every container of the service itself must have. */
const SERVICE_CONTAINERS = ['auth', 'keygen']

function checkCompose () {
  const res = run('docker-compose', ['-f', 'docker-compose.yml', 'config', '-q'])
  if (!res.ok) {
    fail('docker-compose.yml', res.output)
    return
  }
  pass('docker-compose.yml', 'docker-compose config -q')
  const rendered = run('docker-compose', ['-f', 'docker-compose.yml', 'config'])
  const { services } = parseAllDocuments(rendered.stdout ?? '')[0]?.toJS() ?? {}
  for (const name of SERVICE_CONTAINERS) {
    const service = services?.[name]
    const problems = []
    if (service === undefined) problems.push('no such service')
    else {
      if (service.read_only !== true) problems.push('read_only is not true')
      if (!(service.cap_drop ?? []).includes('ALL')) problems.push('cap_drop lacks ALL')
      if (!(service.security_opt ?? []).includes('no-new-privileges:true')) problems.push('security_opt lacks no-new-privileges:true')
      const environment = service.environment ?? {}
      if (/\/\/[^/@]*@/.test(String(environment.REDIS_URL ?? ''))) problems.push('REDIS_URL carries credentials: use REDIS_USERNAME and REDIS_PASSWORD_FILE')
      problems.push(...Object.keys(environment).filter((key) => /PASSWORD$/.test(key)).map((key) => `${key}: passwords come from files`))
    }
    if (problems.length > 0) fail(`docker-compose.yml: ${name}`, problems.join('\n'))
    else pass(`docker-compose.yml: ${name}`, 'read-only, no capabilities, no-new-privileges, no password')
  }
}

/**
 * The real nginx.conf, linked into a temp prefix beside an upstream.conf that needs no DNS. stdout is
 * /dev/null because nginx opens /dev/stdout for its access log, which fails on Node's socket pipes.
 */
function checkNginx () {
  const conf = join('deploy', 'nginx', 'nginx.conf')
  const prefix = mkdtempSync(join(tmpdir(), 'validate-nginx-'))
  try {
    symlinkSync(join(root, conf), join(prefix, 'nginx.conf'))
    writeFileSync(join(prefix, 'upstream.conf'), 'upstream auth_service { server 127.0.0.1:3000; }\n')
    const res = run('nginx', ['-t', '-q', '-p', `${prefix}/`, '-c', join(prefix, 'nginx.conf'),
      '-g', `pid ${join(prefix, 'nginx.pid')};`], { stdio: ['ignore', 'ignore', 'pipe'] })
    if (res.ok) pass(conf, 'nginx -t')
    else fail(conf, res.output)
  } finally {
    rmSync(prefix, { recursive: true, force: true })
  }
}

function checkDockerfile () {
  const res = run(join(root, 'node_modules', '.bin', 'dockerfilelint'), ['Dockerfile'])
  if (res.ok) pass('Dockerfile', 'dockerfilelint')
  else fail('Dockerfile', res.output)
}

// --- Report --------------------------------------------------------------------------------------

await checkKustomizations()
checkCompose()
checkNginx()
checkDockerfile()

const failed = results.filter((r) => !r.ok)
for (const r of results) {
  if (r.ok) console.log(`ok    ${r.item} (${r.detail})`)
}
for (const r of failed) {
  console.log(`FAIL  ${r.item}\n${r.detail.replace(/^/gm, '        ')}`)
}
console.log(`validate-deploy: ${results.length - failed.length} passed, ${failed.length} failed`)
if (failed.length > 0) process.exitCode = 1
