/**
 * Regenerates assets/common-passwords.txt, the list of common and breached passwords that
 * src/users/password-policy.ts rejects (NIST SP 800-63B: check against known-compromised values).
 *
 * Data: the "passwords" dictionary of the npm package @zxcvbn-ts/language-common (a
 * devDependency): about 49,000 passwords from leaked-password corpora, most frequent first.
 * MIT licence, Copyright (c) 2012-2016 Dan Wheeler and Dropbox, Inc. (see the package's LICENSE.txt).
 *
 * Run after upgrading that package, from the repository root, and commit the result
 * (the loader is tap's TypeScript loader, as for `npm run bench`):
 *   node --import ./node_modules/@tapjs/typescript/dist/esm/import.mjs scripts/build-common-passwords.ts
 */
import { writeFileSync } from 'node:fs'
import { dictionary } from '@zxcvbn-ts/language-common'
import { ConfigSchema } from '../src/config.js'
import { caseFoldedPassword, COMMON_PASSWORDS_FILE, passwordLength } from '../src/users/password-policy.js'

// Shorter entries could never pass the length rule, so listing them would only cost memory.
const shortestAllowed = ConfigSchema.properties.PASSWORD_MIN_LENGTH.minimum ?? 0

// Stored in the form the policy compares: normalized and lowercased. Kept in the source's frequency order.
const entries = new Set(dictionary.passwords
  .filter((password) => passwordLength(password) >= shortestAllowed)
  .map(caseFoldedPassword))

writeFileSync(COMMON_PASSWORDS_FILE, [...entries].join('\n') + '\n')
console.log(`Wrote ${entries.size} passwords to assets/common-passwords.txt`)
