/**
 * Token ids (jti) revoked before they expire; each entry lives exactly as long as its token. State
 * that must survive: a revoked token must stay refused after a restart or a failover.
 */
export interface RevocationList {
  revoke (jti: string, expiresAt: number): Promise<void>
  isRevoked (jti: string): Promise<boolean>
}
