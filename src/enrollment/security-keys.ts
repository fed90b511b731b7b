import { createHash } from 'node:crypto';
import { DomainError } from '../shared/domain-error';
import type { Factor, WebAuthnCredential } from './mfa.decider';

/*
 * WebAuthn data shared by the registration (enrollment) and the assertion
 * (login) of security keys. Pure.
 */

/** ES256 and RS256: what security keys and platform authenticators sign with. */
export const SUPPORTED_ALGORITHMS = [-7, -257];

/** How long the browser's ceremony may take. */
export const WEBAUTHN_TIMEOUT_MS = 5 * 60 * 1000;

/**
 * The user handle a security key stores at registration and returns in its
 * assertions: stable, and naming nobody (16 bytes of a SHA-256 of the firm and
 * the user).
 */
export function userHandleOf(firmId: string, userId: string): Uint8Array<ArrayBuffer> {
  return new Uint8Array(
    createHash('sha256').update(`${firmId}\u0000${userId}`).digest().subarray(0, 16),
  );
}

/** The security keys among the factors. */
export function credentialsOf(factors: Iterable<Factor>): WebAuthnCredential[] {
  return [...factors].flatMap((factor) => (factor.credential ? [factor.credential] : []));
}

/** The challenge a browser signed, from its clientDataJSON (base64url JSON); else 400. */
export function challengeOf(clientDataJSON: unknown): string {
  try {
    const parsed = JSON.parse(
      Buffer.from(String(clientDataJSON), 'base64url').toString('utf8'),
    ) as { challenge?: unknown };
    if (typeof parsed.challenge === 'string' && parsed.challenge.length > 0) {
      return parsed.challenge;
    }
  } catch {
    // fall through to the refusal
  }
  throw new DomainError(
    'validation-failed',
    'response.clientDataJSON is not base64url JSON with a challenge.',
    'invalid',
    { errors: [{ field: 'response.clientDataJSON', message: 'must carry the challenge' }] },
  );
}
