import { mkdtemp, rm } from 'node:fs/promises'
import { createServer } from 'node:http'
import path from 'node:path'
import { writePrivateKeyFile } from '../src/tokens/keys.ts'
import { launchTopology, TOPOLOGY_NAMES, type RunningTopology, type TopologyName } from './redis-topologies.ts'
import { sharedTopologiesSocket } from './shared-topologies.ts'

// The process that holds a tap run's shared Redis topologies (see shared-topologies.ts), in the
// directory it is given, until told to stop or until the tap runner is gone.
const [dir, runnerPid] = [process.argv[2], Number(process.argv[3])]
const keyFile = path.join(dir, 'jwt.pem')
await writePrivateKeyFile(keyFile, 'EdDSA')
const topologies = new Map<TopologyName, Promise<RunningTopology>>()

function topology (name: TopologyName): Promise<RunningTopology> {
  let started = topologies.get(name)
  if (started === undefined) {
    started = mkdtemp(path.join(dir, `${name}-`)).then(async (topologyDir) => await launchTopology(name, topologyDir))
    topologies.set(name, started)
  }
  return started
}

let stopping: Promise<void> | undefined
function stop (): Promise<void> {
  stopping ??= (async () => {
    // Those still starting are stopped once up; one that failed to start stopped its own processes.
    const started = await Promise.allSettled(topologies.values())
    await Promise.all(started.map(async (result) => { if (result.status === 'fulfilled') await result.value.stop() }))
    await rm(dir, { recursive: true, force: true })
  })()
  return stopping
}

const server = createServer((request, response) => {
  if (request.method === 'POST' && request.url === '/stop') {
    void stop().then(() => { response.end(); server.close() })
    return
  }
  const name = TOPOLOGY_NAMES.find((candidate) => request.url === `/${candidate}`)
  if (name === undefined || stopping !== undefined) {
    response.writeHead(404).end()
    return
  }
  topology(name).then(
    ({ env }) => { response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ env, keyFile })) },
    (error: Error) => { response.writeHead(500).end(error.stack ?? error.message) })
})
server.listen(sharedTopologiesSocket(dir), () => { process.send?.('listening') })

// An interrupted run never calls the after script: stop when the runner is gone.
setInterval(() => {
  try {
    process.kill(runnerPid, 0)
  } catch {
    void stop().then(() => process.exit(0))
  }
}, 1000).unref()
