import { randomBytes } from 'node:crypto';
import { deterministicId } from '../shared/deterministic-id';
import { open, seal, SealedSecret } from './secret-box';

/** Data key ids are derived, so that every process names a user's key of a generation alike. */
export function dataKeyId(firmId: string, userId: string, generation: number): string {
  return deterministicId('data-key', firmId, userId, String(generation));
}

export function newWrappedKey(masterKey: Buffer, keyId: string): string {
  return JSON.stringify(seal(masterKey, 'master', randomBytes(32), `data-key:${keyId}`));
}

export function unwrapKey(masterKey: Buffer, keyId: string, wrapped: string): Buffer {
  return open(masterKey, JSON.parse(wrapped) as SealedSecret, `data-key:${keyId}`);
}
