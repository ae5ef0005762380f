import { realpathSync } from 'node:fs'
import { pathToFileURL } from 'node:url'
import { loadConfig, type Config } from '../config.ts'

/**
 * Whether node was started with the module at `moduleUrl`. Node names an ES module by its real
 * path, while argv[1] is the path as typed: through a symlinked directory (a deployment's
 * `current` link, a container's mounted path) the two differ until argv[1] is resolved too.
 */
function isStartScript (moduleUrl: string): boolean {
  if (process.argv[1] === undefined) return false
  try {
    return moduleUrl === pathToFileURL(realpathSync(process.argv[1])).href
  } catch {
    return false
  }
}

/**
 * Runs a command-line program when the module at `moduleUrl` is the script node was started with
 * (not when a test imports it): loads the settings (a bad one is its message and exit code 1),
 * then sets the exit code `run` returns.
 */
export async function runAsProgram (moduleUrl: string, run: (argv: string[], config: Config) => Promise<number>): Promise<void> {
  if (!isStartScript(moduleUrl)) return
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
