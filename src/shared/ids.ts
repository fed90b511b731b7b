import { createHash } from 'node:crypto';

/**
 * Identifiers come from the host application and are opaque to us, but they end
 * up in stream names, file names of exports and log lines, so the contract pins
 * them to a small alphabet. `/` is deliberately outside it: stream names use it
 * to join a firm id and an entity id without ambiguity. `.` and `..` alone are
 * refused: in a URL path they are dot segments (RFC 3986 §5.2.4), which clients
 * and proxies remove, so such a firm or user could never be reached reliably.
 */
export const ID_PATTERN = /^(?!\.{1,2}$)[A-Za-z0-9._:-]{1,128}$/;

export function isValidId(value: unknown): value is string {
  return typeof value === 'string' && ID_PATTERN.test(value);
}

/** Stream names follow `category-id`; the firm id is part of every one of them. */
export const streams = {
  subscription: (firmId: string) => `subscription-${firmId}`,
  enablement: (firmId: string) => `enablement-${firmId}`,
  user: (firmId: string, userId: string) => `user-${firmId}/${userId}`,
  /** A user's login verifications; apart from the factors so that logins never slow down commands. */
  verification: (firmId: string, userId: string) => `verification-${firmId}/${userId}`,
  corporation: (firmId: string, corporationId: string) => `corporation-${firmId}/${corporationId}`,
  /** The firm's outgoing email: what was queued, for whom, why, and what was sent. */
  notifications: (firmId: string) => `notifications-${firmId}`,
  /**
   * Who holds one WebAuthn credential in the firm. Credential ids are up to
   * 1,023 bytes of base64url: the stream is named by a hash of it.
   */
  securityKey: (firmId: string, credentialId: string) =>
    `securitykey-${firmId}/${createHash('sha256').update(credentialId).digest('hex').slice(0, 40)}`,
  /**
   * The firm's tamper-evidence anchors: the heads of its streams' hash chains,
   * recorded as they change (ADR 0017, src/audit/chain-anchors.ts).
   */
  audit: (firmId: string) => `audit-${firmId}`,
};

/**
 * The firm a stream belongs to, read from its name (`category-firmId` or
 * `category-firmId/entity`), or undefined for a name of another shape.
 * Unambiguous although firm ids may hold `-`: no category does, and `/` is
 * outside the id alphabet, so `user-acme-2/x` is firm `acme-2`, never `acme`.
 */
export function firmOfStream(streamId: string): string | undefined {
  const dash = streamId.indexOf('-');
  if (dash <= 0) return undefined;
  const rest = streamId.slice(dash + 1);
  const slash = rest.indexOf('/');
  const firmId = slash === -1 ? rest : rest.slice(0, slash);
  return isValidId(firmId) ? firmId : undefined;
}
