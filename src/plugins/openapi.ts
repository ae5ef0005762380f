import fastifySwagger from '@fastify/swagger'
import fastifySwaggerUi from '@fastify/swagger-ui'
import fp from 'fastify-plugin'
import { sharedSchemas } from '../schemas/auth.js'

/**
 * The OpenAPI 3.1 document, generated from the TypeBox route schemas. Shared schemas are
 * registered by $id and appear under components.schemas by that name.
 */
export default fp(async function openapiPlugin (app) {
  for (const schema of sharedSchemas) app.addSchema(schema)

  await app.register(fastifySwagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Auth service',
        description: 'Login and token service for internal service-to-service authentication.',
        version: '1.0.0',
        contact: { name: 'Auth service maintainers' },
        license: { name: 'MIT', identifier: 'MIT' }
      },
      // Relative: the document is the same for every deployment (it is generated and committed), and
      // a relative URL resolves against wherever the document is served, so /docs calls this service.
      servers: [{ url: '/', description: 'The service that serves this document' }],
      components: {
        securitySchemes: {
          bearerAuth: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: 'An access token from POST /api/auth/login' }
        }
      },
      tags: [
        { name: 'auth', description: 'Authentication' },
        { name: 'health', description: 'Probes for load balancers and orchestrators' }
      ]
    },
    refResolver: {
      buildLocalReference: (json, _baseUri, _fragment, index) => typeof json.$id === 'string' ? json.$id : `def-${index}`
    }
  })
  // The document is generated either way (npm run openapi); only the UI and its assets go.
  if (app.config.DOCS_ENABLED) await app.register(fastifySwaggerUi, { routePrefix: '/docs' })
}, { name: 'openapi', dependencies: ['config'] })
