import { AjvCompiler } from '@fastify/ajv-compiler'
import { SerializerSelector } from '@fastify/fast-json-stringify-compiler'
import type { FastifyServerOptions } from 'fastify'

// fastify compiles every route's schemas (ajv for what comes in, fast-json-stringify for what goes
// out) in each app it builds, about 0.2 s of CPU for this service's routes. These compilers are
// the ones fastify uses, shared by every app of the process: a schema object compiled once
// against the same shared schemas and options is not compiled again. The service builds two apps
// (the service and its admin API); a test builds hundreds.

type SerializerFactory = ReturnType<typeof SerializerSelector>
type Serializer = ReturnType<ReturnType<SerializerFactory>>

const serializerFactory = SerializerSelector()
/** Each response schema's serializers, by the shared schemas and options they were built with. */
const serializers = new WeakMap<object, Map<string, Serializer>>()

/** fast-json-stringify's compiler, remembering what it built for each schema object. */
function buildSerializer (...[externalSchemas, options]: Parameters<SerializerFactory>): ReturnType<SerializerFactory> {
  const build = serializerFactory(externalSchemas, options)
  const key = JSON.stringify([externalSchemas, options])
  return (route) => {
    // A response schema is an object: fastify builds no serializer for a route without one.
    const schema = route.schema as object
    const built = serializers.get(schema) ?? new Map<string, Serializer>()
    serializers.set(schema, built)
    const serializer = built.get(key) ?? build(route)
    built.set(key, serializer)
    return serializer
  }
}

/**
 * @fastify/ajv-compiler keeps one Ajv instance per set of shared schemas and options, and Ajv one
 * compiled validator per schema object.
 */
const compilersFactory = { buildValidator: AjvCompiler(), buildSerializer }

/** How the service and its admin API compile schemas: strict validation (no type coercion, unknown properties an error rather than dropped), by the shared compilers. */
export const schemaOptions = {
  ajv: { customOptions: { coerceTypes: false, removeAdditional: false } },
  schemaController: { compilersFactory }
} satisfies Pick<FastifyServerOptions, 'ajv' | 'schemaController'>
