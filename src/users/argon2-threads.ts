import { readFileSync, readdirSync } from 'node:fs'
import { stat } from 'node:fs/promises'
import { availableParallelism, setPriority } from 'node:os'
import type { Config } from '../config.ts'

/**
 * libuv threads beyond the hashing ones: file reads, log writes and DNS lookups run on the same
 * pool, and with only as many threads as hashes they would wait behind a whole argon2 hash.
 */
export const SPARE_THREADPOOL_THREADS = 2

/**
 * The nice value of libuv's threads, which run argon2: the event loop (nice 0) gets a core within
 * a scheduler tick while hashes take every core, so probes and rejections stay fast. It costs the
 * hashes nothing when nothing else wants the cores.
 */
export const HASHING_THREAD_NICE = 10

/** Queued verifications per hashing thread when LOGIN_QUEUE_MAX is unset: at 20-40 ms a hash, a wait of at most about a third of a second. */
const QUEUE_PER_THREAD = 8

/** A cgroup CPU quota in cores (v2 `cpu.max`, else v1 `cfs_quota_us`); undefined when there is none. */
function cgroupCpuQuota (): number | undefined {
  const read = (file: string): string | undefined => {
    try {
      return readFileSync(file, 'utf8').trim()
    } catch {
      return undefined
    }
  }
  const v2 = read('/sys/fs/cgroup/cpu.max')?.split(' ')
  if (v2 !== undefined) return v2[0] === 'max' ? undefined : Number(v2[0]) / Number(v2[1])
  const quota = Number(read('/sys/fs/cgroup/cpu/cpu.cfs_quota_us'))
  const period = Number(read('/sys/fs/cgroup/cpu/cpu.cfs_period_us'))
  return quota > 0 && period > 0 ? quota / period : undefined
}

/**
 * The cores this process may use: the CPUs it may run on, capped by a container's CPU limit
 * (rounded down, at least 1: a thread over the quota only gets the whole process throttled).
 */
export function usableCores (): number {
  const quota = cgroupCpuQuota()
  const cores = availableParallelism()
  return quota === undefined ? cores : Math.max(1, Math.min(cores, Math.floor(quota)))
}

/** How many argon2 hashes run at once (ARGON2_THREADS, else the usable cores), and how many may wait. */
export function hashingCapacity (config: Pick<Config, 'ARGON2_THREADS' | 'LOGIN_QUEUE_MAX'>): { threads: number, queueMax: number } {
  const threads = config.ARGON2_THREADS ?? usableCores()
  return { threads, queueMax: config.LOGIN_QUEUE_MAX ?? QUEUE_PER_THREAD * threads }
}

/**
 * Sizes libuv's threadpool for `hashingThreads` hashes plus the spare threads. libuv reads
 * UV_THREADPOOL_SIZE when the pool first starts, so this must run before any file, DNS or crypto
 * work of the process: server.ts calls it right after reading the config.
 */
export function sizeThreadpool (hashingThreads: number): void {
  process.env.UV_THREADPOOL_SIZE = String(hashingThreads + SPARE_THREADPOOL_THREADS)
}

/**
 * Lowers the priority of libuv's threads (Linux names them `libuv-worker`; `setpriority` takes a
 * thread id there). Starts the pool first (libuv starts all its threads with the first job).
 * Resolves to how many threads it lowered, 0 where threads cannot be listed (not Linux).
 */
export async function lowerThreadpoolPriority (nice = HASHING_THREAD_NICE): Promise<number> {
  await stat('.')
  let lowered = 0
  let tasks: string[]
  try {
    tasks = readdirSync('/proc/self/task')
  } catch {
    return 0
  }
  for (const tid of tasks) {
    try {
      if (readFileSync(`/proc/self/task/${tid}/comm`, 'utf8').trim() !== 'libuv-worker') continue
      setPriority(Number(tid), nice)
      lowered++
    } catch {
      // The thread ended meanwhile, or the platform refuses: hashing at normal priority still works.
    }
  }
  return lowered
}
