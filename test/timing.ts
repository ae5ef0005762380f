/**
 * How long `measured` takes against `reference`, timed in turns (one of each at a time, seven
 * times), so that both see the same moments of a machine that other tests share: measured one
 * phase after the other, a load that came or went between them once made one look twice the
 * other. The median of the turns' ratios, and each turn's times for the message.
 */
export async function costInTurns (measured: () => Promise<unknown>, reference: () => Promise<unknown>): Promise<{ ratio: number, turns: string }> {
  const timedMs = async (run: () => Promise<unknown>): Promise<number> => {
    const started = process.hrtime.bigint()
    await run()
    return Number(process.hrtime.bigint() - started) / 1e6
  }
  const ratios: number[] = []
  const turns: string[] = []
  for (let i = 0; i < 7; i++) {
    const referenceMs = await timedMs(reference)
    const measuredMs = await timedMs(measured)
    ratios.push(measuredMs / referenceMs)
    turns.push(`${measuredMs.toFixed(1)}/${referenceMs.toFixed(1)} ms`)
  }
  return { ratio: ratios.sort((a, b) => a - b)[3], turns: turns.join(', ') }
}
