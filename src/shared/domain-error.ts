/**
 * A rule refused a command. The code is stable: it becomes the last segment of
 * the problem+json `type`, so hosts can branch on it. The kind picks the HTTP
 * status family without the domain knowing about HTTP.
 */
export type DomainErrorKind =
  | 'conflict'
  | 'not-found'
  | 'invalid'
  | 'locked'
  | 'unauthorized'
  /** The data needed to decide cannot be read now (503). */
  | 'unavailable';

export class DomainError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly kind: DomainErrorKind = 'conflict',
    readonly extensions: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = 'DomainError';
  }
}

export const conflict = (code: string, message: string, extensions?: Record<string, unknown>) =>
  new DomainError(code, message, 'conflict', extensions);

export const notFound = (code: string, message: string) =>
  new DomainError(code, message, 'not-found');
