import { pathToFileURL } from 'node:url'
import { loadConfig, type Config } from '../config.js'

/**
 * Runs a command-line program when the module at `moduleUrl` is the script node was started with
 * (not when a test imports it): loads the settings (a bad one is its message and exit code 1),
 * then sets the exit code `run` returns.
 */
export async function runAsProgram (moduleUrl: string, run: (argv: string[], config: Config) => Promise<number>): Promise<void> {
  if (process.argv[1] === undefined || moduleUrl !== pathToFileURL(process.argv[1]).href) return
  let config: Config
  try {
    config = loadConfig(process.env)
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n`)
    process.exitCode = 1
    return
  }
  process.exitCode = await run(process.argv.slice(2), config)
}
