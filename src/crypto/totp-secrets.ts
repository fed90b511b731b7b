import { Inject, Injectable } from '@nestjs/common';
import { generateSecret } from 'otplib';
import { notFound } from '../shared/domain-error';
import { KEY_STORE, KeyStore } from './key-store.port';
import { open, seal, SealedSecret } from './secret-box';

/** Where a TOTP secret belongs: a sealed secret copied to another user or enrollment does not open. */
export const secretAad = (firmId: string, userId: string, enrollmentId: string) =>
  `totp:${firmId}/${userId}/${enrollmentId}`;

/**
 * TOTP secrets, never in clear in an event (DESIGN §6): a new one is sealed
 * with the user's data key of its enrollment generation (AES-256-GCM, ADR
 * 0008), and opened again to check a code. Once a reset destroyed that key
 * (crypto-shredding), a secret cannot be opened: 404 enrollment-not-found.
 */
@Injectable()
export class TotpSecrets {
  constructor(@Inject(KEY_STORE) private readonly keys: KeyStore) {}

  /** A fresh base32 secret (20 random bytes), sealed for this user, generation and enrollment. */
  async newSealed(
    firmId: string,
    userId: string,
    generation: number,
    enrollmentId: string,
  ): Promise<SealedSecret> {
    const dataKey = await this.keys.dataKeyFor(firmId, userId, generation);
    return seal(
      dataKey.key,
      dataKey.keyId,
      Buffer.from(generateSecret(), 'utf8'),
      secretAad(firmId, userId, enrollmentId),
    );
  }

  /** The base32 secret; 404 enrollment-not-found once its key was destroyed. */
  async open(
    firmId: string,
    userId: string,
    enrollmentId: string,
    sealed: SealedSecret,
  ): Promise<string> {
    const key = await this.keys.dataKey(sealed.keyId);
    if (!key) {
      throw notFound(
        'enrollment-not-found',
        `There is no pending enrollment ${enrollmentId} for this user (it was confirmed, reset, or never started).`,
      );
    }
    return open(key, sealed, secretAad(firmId, userId, enrollmentId)).toString('utf8');
  }
}
