import { writeFile } from 'node:fs/promises'
import { clientsFileJsonSchema } from '../schemas/clients-file.ts'

const outputFile = process.argv[2] ?? 'schemas/clients-file.schema.json'
await writeFile(outputFile, clientsFileJsonSchema())
console.log(`Wrote ${outputFile}`)
