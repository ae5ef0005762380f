import fastifySwagger from '@fastify/swagger'
import fastifySwaggerUi from '@fastify/swagger-ui'
import fp from 'fastify-plugin'
import { sharedSchemas } from '../schemas/auth.ts'
import { oauthSchemas } from '../schemas/oauth.ts'
import { openApiOptions } from '../schemas/openapi.ts'

/**
 * The OpenAPI 3.1 document, generated from the TypeBox route schemas. Shared schemas are
 * registered by $id and appear under components.schemas by that name.
 */
export default fp(async function openapiPlugin (app) {
  for (const schema of [...sharedSchemas, ...oauthSchemas]) app.addSchema(schema)

  await app.register(fastifySwagger, openApiOptions({
    title: 'Auth service',
    description: 'Login and token service for internal service-to-service authentication.',
    // Relative: the document is the same for every deployment (it is generated and committed), and
    // a relative URL resolves against wherever the document is served, so /docs calls this service.
    server: { url: '/', description: 'The service that serves this document' },
    securitySchemes: {
      bearerAuth: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: 'An access token from POST /api/auth/login' },
      clientSecretBasic: { type: 'http', scheme: 'basic', description: 'OAuth client_secret_basic: the client id and secret, each form-encoded (RFC 6749 §2.3.1)' },
      oauth2: {
        type: 'oauth2',
        description: 'Client credentials grant; the tokens are RFC 9068 JWTs for the services registered as audiences',
        flows: { clientCredentials: { tokenUrl: '/oauth2/token', scopes: {} } }
      }
    },
    tags: [
      { name: 'auth', description: 'Authentication' },
      { name: 'oauth', description: 'OAuth 2.0 client credentials for services (RFC 6749, 7523, 7662, 7009, 8414, 9068)' },
      { name: 'health', description: 'Probes for load balancers and orchestrators' }
    ]
  }))
  // The document is generated either way (npm run openapi); only the UI and its assets go.
  if (app.config.DOCS_ENABLED) await app.register(fastifySwaggerUi, { routePrefix: '/docs' })
}, { name: 'openapi', dependencies: ['config'] })
