import type { MasterKeyAdoption } from './key-wrapping';

/**
 * Per-user data keys, kept outside the event log and wrapped by MFA_MASTER_KEY.
 *
 * A user's TOTP secrets are sealed with the user's data key of the current
 * enrollment generation. A reset moves the user to the next generation and
 * destroys the keys of the earlier ones: the sealed secrets in old events stay
 * in the log, replayable, but nobody can open them again (crypto-shredding).
 *
 * Two adapters: SQLite (embedded default, `keys.sqlite` in DATA_DIR) and MongoDB
 * (collection `data_keys`). Both pass test/crypto/key-store.contract.ts.
 */
export interface DataKey {
  keyId: string;
  key: Buffer;
}

export interface KeyStore {
  /**
   * The user's data key for this generation, created on first use. Two
   * processes asking at once get the same key.
   */
  dataKeyFor(firmId: string, userId: string, generation: number): Promise<DataKey>;
  /** The key, or undefined once it was destroyed. */
  dataKey(keyId: string): Promise<Buffer | undefined>;
  /**
   * Run once at start, before serving: proves the configured master key opens
   * every stored data key, and re-wraps with it the keys that open only with
   * MFA_MASTER_KEY_PREVIOUS (each key's bytes stay the same, so every sealed
   * secret still opens). Untagged keys from before check values are tagged.
   * Safe when several processes start at once: a key is re-wrapped only if
   * it still holds what this process read.
   * Throws a ConfigError naming MFA_MASTER_KEY, and changes nothing, when any
   * stored key opens with no configured master key.
   */
  adoptMasterKey(): Promise<MasterKeyAdoption>;
  /** Destroys the user's keys of every generation below `generation`; returns how many went. */
  destroyKeysBelow(firmId: string, userId: string, generation: number): Promise<number>;
  close(): Promise<void>;
}

export const KEY_STORE = Symbol('KeyStore');
