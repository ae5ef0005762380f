import { ExpirySweep, SWEEP_INTERVAL_MS } from './expiry-sweep.ts'
import type { RevocationList } from '../../tokens/revocations.ts'

/**
 * Embedded mode: one process, so a Map suffices; expired entries are dropped once a minute. Unlike
 * users and clients it lasts only as long as the process, as the README says of embedded mode.
 */
export class LocalRevocationList implements RevocationList {
  private readonly expiries = new Map<string, number>()
  private readonly sweep = new ExpirySweep(this.expiries, (expiry) => expiry)

  async revoke (jti: string, expiresAt: number): Promise<void> {
    this.sweep.run(Date.now(), SWEEP_INTERVAL_MS)
    this.expiries.set(jti, expiresAt)
  }

  async isRevoked (jti: string): Promise<boolean> {
    return (this.expiries.get(jti) ?? 0) > Date.now()
  }
}
