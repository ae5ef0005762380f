import Fastify, { type FastifyInstance } from 'fastify'
import t from 'tap'
import { schemaOptions } from '../../src/http/schema-compilers.ts'

// One route schema object, as the service's modules hold theirs, in apps built one after another.
const body = { type: 'object', properties: { name: { type: 'string' } }, required: ['name'], additionalProperties: false }
const reply = { $ref: 'shared#' }

/** An app with the shared schemas' compilers, whose shared schema `shared` has these properties; its route answers with what the compilers built for it. */
async function app (shared: Record<string, { type: string }>): Promise<FastifyInstance> {
  const built = Fastify(schemaOptions)
  built.addSchema({ $id: 'shared', type: 'object', properties: shared })
  built.post('/', { schema: { body, response: { 200: reply } } }, async (request, answer) => {
    compiled.set(built, { validate: request.getValidationFunction('body'), serialize: answer.getSerializationFunction('200') })
    return { name: 'alice', role: 'admin', secret: 'never serialized' }
  })
  return built
}
const compiled = new Map<FastifyInstance, { validate: unknown, serialize: unknown }>()

t.test('apps with the same shared schemas compile a route schema once; others get their own', async (t) => {
  const [first, second, other] = [await app({ name: { type: 'string' } }), await app({ name: { type: 'string' } }), await app({ name: { type: 'string' }, role: { type: 'string' } })]
  for (const built of [first, second, other]) t.teardown(async () => await built.close())
  const answers = await Promise.all([first, second, other].map(async (built) => await built.inject({ method: 'POST', url: '/', payload: { name: 'x' } })))
  t.same(answers.map((answer) => answer.json()), [{ name: 'alice' }, { name: 'alice' }, { name: 'alice', role: 'admin' }], 'each app serializes by its own shared schema')
  t.equal(compiled.get(second)?.serialize, compiled.get(first)?.serialize, 'one serializer for the first two')
  t.equal(compiled.get(second)?.validate, compiled.get(first)?.validate, 'one validator for the first two')
  t.not(compiled.get(other)?.serialize, compiled.get(first)?.serialize, 'another for other shared schemas')

  const refused = await second.inject({ method: 'POST', url: '/', payload: { name: 'x', admin: true } })
  t.equal(refused.statusCode, 400, 'validation stays strict: an unknown property is refused, not dropped')
  t.equal((await second.inject({ method: 'POST', url: '/', payload: { name: 1 } })).statusCode, 400, 'and no type is coerced')
})
