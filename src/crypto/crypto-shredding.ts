import type { KeyStore } from './key-store.port';

/**
 * Crypto-shredding (DESIGN §6): a user's TOTP secrets stay in the log, sealed
 * with the data key of the enrollment generation they were made in. When the
 * user moves to a new generation (a reset, a deactivation), the keys of every
 * earlier generation are destroyed: the old events can still be replayed, but
 * their secrets can never be opened again.
 *
 * Idempotent: destroying keys that are already gone destroys nothing. Returns
 * how many keys went.
 */
export function shredRetiredKeys(
  keys: KeyStore,
  firmId: string,
  userId: string,
  currentGeneration: number,
): Promise<number> {
  return keys.destroyKeysBelow(firmId, userId, currentGeneration);
}
