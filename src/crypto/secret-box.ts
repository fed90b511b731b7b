import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

/**
 * AES-256-GCM with a 96-bit random IV. The additional data binds a sealed
 * value to where it belongs (a user, an enrollment), so a ciphertext copied
 * into another record does not open.
 */
export interface SealedSecret {
  /** Which data key sealed it; the key itself lives in the key store, never in the log. */
  keyId: string;
  iv: string;
  ciphertext: string;
  tag: string;
}

export function seal(key: Buffer, keyId: string, plaintext: Buffer, aad: string): SealedSecret {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(Buffer.from(aad, 'utf8'));
  const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return {
    keyId,
    iv: iv.toString('base64url'),
    ciphertext: ciphertext.toString('base64url'),
    tag: cipher.getAuthTag().toString('base64url'),
  };
}

/** Throws when the key, the additional data or the ciphertext is not the one sealed. */
export function open(key: Buffer, sealed: SealedSecret, aad: string): Buffer {
  const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(sealed.iv, 'base64url'));
  decipher.setAAD(Buffer.from(aad, 'utf8'));
  decipher.setAuthTag(Buffer.from(sealed.tag, 'base64url'));
  return Buffer.concat([
    decipher.update(Buffer.from(sealed.ciphertext, 'base64url')),
    decipher.final(),
  ]);
}
