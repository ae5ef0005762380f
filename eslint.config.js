import neostandard from 'neostandard'

// The Fastify ecosystem's style (as the @fastify/* repositories use), TypeScript included.
export default [
  ...neostandard({
    ts: true,
    ignores: ['dist/**', 'coverage/**', '.tap/**', '.node/**', 'openapi/**']
  }),
  {
    rules: {
      // `void reply.header(...)`: a reply is thenable, and `void` says it is deliberately not awaited.
      'no-void': ['error', { allowAsStatement: true }]
    }
  },
  {
    files: ['**/*.ts'],
    rules: {
      // A TypeBox schema and its Static type share a name by design; the compiler already refuses real redeclarations.
      '@typescript-eslint/no-redeclare': 'off'
    }
  }
]
