import { loadConfig } from '../config.js'
import { writePrivateKeyFile } from '../tokens/keys.js'

const USAGE = `Usage: npm run keys -- generate <file> [--if-missing]

Writes a new PEM private key for JWT_ALGORITHM (EdDSA by default) to <file>, readable by its
owner only. An existing file is never overwritten: without --if-missing that is an error, with
it the command succeeds and leaves the file as it is.`

/** The keys command; returns the exit code (0 done, 1 failed, 2 usage). */
export async function runKeysCli (args: string[], env: Record<string, string | undefined>): Promise<number> {
  const flags = args.filter((arg) => arg.startsWith('--'))
  const [command, file, ...extra] = args.filter((arg) => !arg.startsWith('--'))
  const ifMissing = flags.includes('--if-missing')
  if (command !== 'generate' || file === undefined || extra.length > 0 || flags.some((flag) => flag !== '--if-missing')) {
    console.error(USAGE)
    return 2
  }
  try {
    const { JWT_ALGORITHM: algorithm } = loadConfig(env)
    const written = await writePrivateKeyFile(file, algorithm, ifMissing)
    console.log(written ? `Wrote a new ${algorithm} signing key to ${file}` : `${file} already exists; left unchanged`)
    return 0
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    console.error(code === 'EEXIST' ? `${file} already exists; refusing to overwrite a signing key` : `Cannot write ${file}: ${(error as Error).message}`)
    return 1
  }
}

process.exitCode = await runKeysCli(process.argv.slice(2), process.env)
