// The ceiling for login throughput: bare argon2.verify with the service's parameters and its
// hashing threads: as many verifications in flight as the service hashes at once, on a libuv pool
// of the same size and priority (bench/login.mjs starts it with the service's UV_THREADPOOL_SIZE).
// bench/login.mjs keeps one running and compares logins/s with the verifications/s it reports.
//
// Usage: node bench/argon2-verify-loop.mjs <memoryCost KiB> <timeCost> <parallelism> <in flight>
// Each line on stdin holds a number of seconds to verify for; each answer is one JSON line on
// stdout: { "verifications": n, "seconds": s, "cpuSeconds": s, "completedAt": [ms, ...] }, the CPU
// time being the whole process's, threadpool included, and completedAt when each verification
// ended (performance.now()). Exits when stdin ends.
import { createInterface } from 'node:readline'
import argon2 from 'argon2'
import { lowerThreadpoolPriority } from '../dist/users/argon2-threads.js'

const [memoryCost, timeCost, parallelism, inFlight] = process.argv.slice(2).map(Number)
const password = 'a benchmark passphrase of ordinary length'
const hash = await argon2.hash(password, { type: argon2.argon2id, memoryCost, timeCost, parallelism })
await lowerThreadpoolPriority()

async function verifyFor (duration) {
  const completedAt = []
  const startCpu = process.cpuUsage()
  const start = performance.now()
  const deadline = start + duration * 1000
  async function verifyUntilDeadline () {
    while (performance.now() < deadline) {
      if (!await argon2.verify(hash, password)) throw new Error('argon2.verify rejected the right password')
      completedAt.push(performance.now())
    }
  }
  await Promise.all(Array.from({ length: inFlight }, verifyUntilDeadline))
  const { user, system } = process.cpuUsage(startCpu)
  return { verifications: completedAt.length, seconds: (performance.now() - start) / 1000, cpuSeconds: (user + system) / 1e6, completedAt }
}

for await (const line of createInterface({ input: process.stdin })) {
  process.stdout.write(`${JSON.stringify(await verifyFor(Number(line)))}\n`)
}
