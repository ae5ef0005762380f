import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { buildApp } from '../app.js'
import { loadConfig } from '../config.js'

/**
 * Writes the OpenAPI document generated from the route schemas. The app is built in embedded
 * mode in a throwaway data dir: the document depends only on the routes, not on the environment.
 */
export async function generateOpenApiDocument (): Promise<string> {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'auth-openapi-'))
  try {
    const app = await buildApp(loadConfig({ DATA_DIR: dataDir }), false)
    await app.ready()
    const document = JSON.stringify(app.swagger(), null, 2) + '\n'
    await app.close()
    return document
  } finally {
    await rm(dataDir, { recursive: true, force: true })
  }
}
