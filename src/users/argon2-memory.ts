// Imported first by server.ts and by nothing else (it restarts the process that imports it), so
// that this runs before any other module of the service is evaluated: a restart here costs little
// more than Node's own start.
//
// glibc reads MALLOC_ARENA_MAX, and V8 the size of its young generation, only as a process starts.
// Unless whoever started the service set MALLOC_ARENA_MAX (the image does, and the Node
// option), the service starts itself once more in the same process (execve: the same PID,
// descriptors and arguments) with one malloc arena, so that the argon2 block (ARGON2_MEMORY_KIB)
// freed by each libuv thread is not kept in an arena of that thread's own (with 4 threads, 76 MiB
// held for good), and with V8's semi-spaces at most 8 MiB (under load they otherwise grow to
// 16 MiB each) unless its Node options set their size. docs/operations.md, Memory limits.

const ARENAS = '1'
const SEMI_SPACE_FLAG = '--max-semi-space-size=8'

if ((process.env.MALLOC_ARENA_MAX ?? '') === '' && process.execve !== undefined) {
  const options = [...process.execArgv, process.env.NODE_OPTIONS ?? '']
  const semiSpace = options.some((option) => option.includes('--max-semi-space-size')) ? [] : [SEMI_SPACE_FLAG]
  try {
    process.execve(process.execPath, [process.execPath, ...process.execArgv, ...semiSpace, ...process.argv.slice(1)], { ...process.env, MALLOC_ARENA_MAX: ARENAS })
  } catch (error) {
    // The service runs on as it is, with glibc's and V8's defaults: more memory, nothing else.
    process.stderr.write(`auth-service: could not restart with MALLOC_ARENA_MAX=${ARENAS} (${(error as NodeJS.ErrnoException).code ?? 'error'}); running with the defaults\n`)
  }
}

export {}
