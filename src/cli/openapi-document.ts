import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { buildAdminApp } from '../admin/app.ts'
import { buildApp } from '../app.ts'
import { loadConfig } from '../config.ts'

/** The committed OpenAPI documents: the service's public API, and the admin API of its admin listener. */
export interface OpenApiDocuments {
  'openapi/openapi.json': string
  'openapi/admin.json': string
}

/**
 * The OpenAPI documents generated from the route schemas. The apps are built in embedded mode in
 * a throwaway data dir: the documents depend only on the routes, not on the environment.
 */
export async function generateOpenApiDocuments (): Promise<OpenApiDocuments> {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'auth-openapi-'))
  try {
    const app = await buildApp(loadConfig({ DATA_DIR: dataDir }), false)
    await app.ready()
    const admin = await buildAdminApp(app)
    await admin.ready()
    const documents = {
      'openapi/openapi.json': JSON.stringify(app.swagger(), null, 2) + '\n',
      'openapi/admin.json': JSON.stringify(admin.swagger(), null, 2) + '\n'
    }
    await admin.close()
    await app.close()
    return documents
  } finally {
    await rm(dataDir, { recursive: true, force: true })
  }
}
