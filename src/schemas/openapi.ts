import type { FastifyDynamicSwaggerOptions } from '@fastify/swagger'

type Document = NonNullable<FastifyDynamicSwaggerOptions['openapi']>

/** What tells the service's two OpenAPI documents (the public API, the admin API) apart. */
export interface OpenApiDocument {
  title: string
  description: string
  server: NonNullable<Document['servers']>[number]
  securitySchemes: NonNullable<Document['components']>['securitySchemes']
  tags: Document['tags']
}

/**
 * @fastify/swagger's options for one of the documents: OpenAPI 3.1, the same version, contact and
 * licence, and shared schemas under components.schemas by their $id.
 */
export function openApiOptions (document: OpenApiDocument): FastifyDynamicSwaggerOptions {
  return {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: document.title,
        description: document.description,
        version: '1.0.0',
        contact: { name: 'Auth service maintainers' },
        license: { name: 'MIT', identifier: 'MIT' }
      },
      servers: [document.server],
      components: { securitySchemes: document.securitySchemes },
      tags: document.tags
    },
    refResolver: {
      buildLocalReference: (json, _baseUri, _fragment, index) => typeof json.$id === 'string' ? json.$id : `def-${index}`
    }
  }
}
