import { writeFile } from 'node:fs/promises'
import { generateOpenApiDocuments } from './openapi-document.ts'

for (const [file, document] of Object.entries(await generateOpenApiDocuments())) {
  await writeFile(file, document)
  console.log(`Wrote ${file}`)
}
