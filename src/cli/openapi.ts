import { writeFile } from 'node:fs/promises'
import { generateOpenApiDocument } from './openapi-document.js'

const outputFile = process.argv[2] ?? 'openapi/openapi.json'
await writeFile(outputFile, await generateOpenApiDocument())
console.log(`Wrote ${outputFile}`)
