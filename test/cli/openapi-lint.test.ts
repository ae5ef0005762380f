import { execFile } from 'node:child_process'
import { readFile, writeFile } from 'node:fs/promises'
import path from 'node:path'
import t from 'tap'
import { tempDir } from '../helper.ts'

/**
 * `npm run lint:openapi` on a copy of the committed document with one change. Its output says which
 * linter found what, so each case can show that the one warning it introduces is what fails it.
 */
async function lintChanged (dir: string, name: string, change: (document: any) => void): Promise<{ code: number, output: string }> {
  const document = JSON.parse(await readFile('openapi/openapi.json', 'utf8'))
  // The ignore file names the committed document only; in the copy the input-less GETs get a 4XX
  // instead, and the oauth2 scheme (documented for callers, named by no operation) is left out.
  for (const route of ['/health/live', '/health/ready', '/.well-known/jwks.json', '/.well-known/oauth-authorization-server']) document.paths[route].get.responses['400'] = { description: 'Lint test only' }
  delete document.components.securitySchemes.oauth2
  change(document)
  const file = path.join(dir, `${name}.json`)
  await writeFile(file, JSON.stringify(document, null, 2))
  return new Promise((resolve) => {
    execFile(process.execPath, ['scripts/lint-openapi.mjs', file], (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : (error.code as number), output: stdout + stderr })
    })
  })
}

t.test('lint:openapi fails on a warning from either linter, not only on errors', async (t) => {
  const dir = await tempDir(t, 'auth-openapi-lint-')

  // Redocly's recommended rules warn about a missing licence (and exit 0 on warnings); spectral:oas does not check it.
  const noLicence = await lintChanged(dir, 'no-licence', (document) => { delete document.info.license })
  t.equal(noLicence.code, 1, 'a redocly warning fails')
  t.match(noLicence.output, /warn info-license .*\nredocly lint \(recommended\): 0 errors, 1 warnings/)
  t.match(noLicence.output, /spectral lint \(spectral:oas\): no problems/)

  // spectral:oas warns about a missing operation description; redocly's recommended rules do not.
  const noDescription = await lintChanged(dir, 'no-description', (document) => { delete document.paths['/api/auth/me'].get.description })
  t.equal(noDescription.code, 1, 'a spectral warning fails')
  t.match(noDescription.output, /redocly lint \(recommended\): 0 errors, 0 warnings/)
  t.match(noDescription.output, /warning\s+operation-description/)
  t.match(noDescription.output, /spectral lint \(spectral:oas\): failed/)
})
