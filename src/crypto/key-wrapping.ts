import { createHmac, randomBytes } from 'node:crypto';
import { ConfigError } from '../config/config-error';
import { deterministicId } from '../shared/deterministic-id';
import { open, seal, SealedSecret } from './secret-box';

/** Data key ids are derived, so that every process names a user's key of a generation alike. */
export function dataKeyId(firmId: string, userId: string, generation: number): string {
  return deterministicId('data-key', firmId, userId, String(generation));
}

/**
 * A master key's check value: HMAC-SHA256 keyed by the master key over a fixed
 * label, first 12 bytes, base64url (16 characters). Stored beside each wrapped
 * data key, it says which master key wrapped it without revealing the key (a
 * PRF output), so a start can tell "this key opens the store" by comparing
 * values instead of trying to decrypt. Only a party holding the key can
 * compute it.
 */
export function masterKeyCheckValue(masterKey: Buffer): string {
  return createHmac('sha256', masterKey)
    .update('mfa-service master key check value v1')
    .digest()
    .subarray(0, 12)
    .toString('base64url');
}

/** A data key as a key store keeps it: wrapped, with the check value of the master key that wrapped it. */
export interface WrappedDataKey {
  keyId: string;
  wrapped: string;
  /** null for keys stored before check values existed: which master key wrapped them is unknown. */
  masterKeyCheck: string | null;
}

/**
 * What a start found in a key store (see MasterKeyRing.plan): the keys the
 * current master key already opens, the ones to re-wrap from the previous
 * key, and the ones to tag with the check value they lacked.
 */
export interface MasterKeyPlan {
  /** Total data keys examined. */
  dataKeys: number;
  /** Keys that need writing back: re-wrapped with the current key, and tagged with its check value. */
  updates: Array<{
    keyId: string;
    from: WrappedDataKey;
    to: { wrapped: string; masterKeyCheck: string };
  }>;
  /** How many of `updates` open only with the previous master key. */
  fromPrevious: number;
  /** Keys neither master key opens (ids only; their count is what the error reports). */
  unopenable: string[];
}

/** What adopting the master key did at start; logged by the caller. */
export interface MasterKeyAdoption {
  dataKeys: number;
  /** Keys re-wrapped from MFA_MASTER_KEY_PREVIOUS to MFA_MASTER_KEY by this process. */
  rewrapped: number;
  /** Whether a previous key was configured (then it can now be dropped). */
  previousConfigured: boolean;
}

/**
 * The configured master key (MFA_MASTER_KEY) and, during a rotation, the one
 * before it (MFA_MASTER_KEY_PREVIOUS). Wraps every new data key with the
 * current key; unwraps with whichever key the stored check value names.
 * AES-256-GCM, additional data `data-key:<keyId>` so a wrapped key copied onto
 * another id does not open (ADR 0008).
 */
export class MasterKeyRing {
  readonly currentCheck: string;
  readonly previousCheck: string | null;

  constructor(
    private readonly current: Buffer,
    private readonly previous: Buffer | null = null,
  ) {
    this.currentCheck = masterKeyCheckValue(current);
    this.previousCheck = previous ? masterKeyCheckValue(previous) : null;
  }

  get hasPrevious(): boolean {
    return this.previous !== null;
  }

  /** A new random 256-bit data key wrapped by the current master key. */
  newWrappedKey(keyId: string): { wrapped: string; masterKeyCheck: string } {
    return {
      wrapped: wrap(this.current, keyId, randomBytes(32)),
      masterKeyCheck: this.currentCheck,
    };
  }

  /**
   * The data key in clear. Throws when the master key its check value names
   * is not configured here, or when the wrapped bytes do not open.
   */
  unwrap(stored: WrappedDataKey): Buffer {
    const opened = this.tryUnwrap(stored);
    if (!opened) {
      throw new Error(
        `Data key ${stored.keyId} is wrapped by a master key this process does not hold (check value ${stored.masterKeyCheck ?? 'unknown'})`,
      );
    }
    return opened.key;
  }

  /**
   * Decides, without writing, what a start must do so that every stored key is
   * wrapped by the current master key: nothing for keys tagged with its check
   * value; re-wrap those that open with the previous key; for untagged keys
   * (stored before check values), try both keys. Keys that open with neither
   * are reported, and the caller refuses to start.
   */
  plan(stored: Iterable<WrappedDataKey>): MasterKeyPlan {
    const plan: MasterKeyPlan = { dataKeys: 0, updates: [], fromPrevious: 0, unopenable: [] };
    for (const key of stored) {
      plan.dataKeys++;
      if (key.masterKeyCheck === this.currentCheck) continue;
      const opened = this.tryUnwrap(key);
      if (!opened) {
        plan.unopenable.push(key.keyId);
      } else if (opened.by === 'current') {
        plan.updates.push({
          keyId: key.keyId,
          from: key,
          to: { wrapped: key.wrapped, masterKeyCheck: this.currentCheck },
        });
      } else {
        plan.fromPrevious++;
        plan.updates.push({
          keyId: key.keyId,
          from: key,
          to: {
            wrapped: wrap(this.current, key.keyId, opened.key),
            masterKeyCheck: this.currentCheck,
          },
        });
      }
    }
    return plan;
  }

  private tryUnwrap(stored: WrappedDataKey): { key: Buffer; by: 'current' | 'previous' } | null {
    const candidates: Array<['current' | 'previous', Buffer | null, string | null]> = [
      ['current', this.current, this.currentCheck],
      ['previous', this.previous, this.previousCheck],
    ];
    for (const [by, masterKey, check] of candidates) {
      if (!masterKey) continue;
      // A tagged key is tried only with the master key it names; an untagged one with each.
      if (stored.masterKeyCheck !== null && stored.masterKeyCheck !== check) continue;
      try {
        return { key: unwrapKey(masterKey, stored.keyId, stored.wrapped), by };
      } catch {
        // not this master key (or damaged): try the next one
      }
    }
    return null;
  }
}

/**
 * The start-up refusal when stored data keys open with no configured master
 * key: one line naming the variable (main.ts prints it), never a stack. The
 * count tells an operator whether the whole store is foreign (a wrong key) or
 * a rotation was cut short (some keys still need the previous one).
 */
export function masterKeyMismatch(
  plan: MasterKeyPlan,
  ring: MasterKeyRing,
  where: string,
): ConfigError {
  const which = ring.hasPrevious ? 'neither with it nor with MFA_MASTER_KEY_PREVIOUS' : 'with it';
  return new ConfigError(
    'MFA_MASTER_KEY',
    `${plan.unopenable.length} of the ${plan.dataKeys} data keys in ${where} do not open ${which}: ` +
      'start with the master key they were wrapped with, or rotate by setting MFA_MASTER_KEY_PREVIOUS to it (docs/configuration.md, "Rotating the master key")',
  );
}

function wrap(masterKey: Buffer, keyId: string, dataKey: Buffer): string {
  return JSON.stringify(seal(masterKey, 'master', dataKey, `data-key:${keyId}`));
}

function unwrapKey(masterKey: Buffer, keyId: string, wrapped: string): Buffer {
  return open(masterKey, JSON.parse(wrapped) as SealedSecret, `data-key:${keyId}`);
}
