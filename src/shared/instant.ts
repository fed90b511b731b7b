/*
 * Moments in time as callers type them (the audit's `from`/`to`/`asOf`, the
 * usage history's window): one parser, so every endpoint and CLI refuses the
 * same input with the same words.
 */

const INSTANT =
  /^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(Z|[+-]\d{2}:\d{2}))?$/;

/** What a caller is told when a moment cannot be read. */
export const INSTANT_MESSAGE =
  'must be an ISO 8601 date-time with its offset (2026-01-15T09:30:00Z) or a date (2026-01-15)';

/**
 * A moment given as ISO 8601 (RFC 3339): a date-time with its offset
 * (`2026-01-15T09:30:00Z`, `2026-01-15T10:30:00.250+01:00`), or a date alone,
 * which is midnight UTC. Milliseconds since the epoch, digits past the
 * millisecond dropped (event times are kept to the millisecond, so an event is
 * at or before `…00.1239` exactly when it is at or before `…00.123`).
 * Undefined for anything else, an impossible date (February 30th) included.
 */
export function parseInstant(text: string): number | undefined {
  const match = INSTANT.exec(text);
  if (!match) return undefined;
  const [, y, mo, d, h = '00', mi = '00', s = '00', fraction = '', zone = 'Z'] = match;
  const [year, month, day, hour, minute, second] = [y, mo, d, h, mi, s].map(Number);
  const ms = Number(fraction.padEnd(3, '0').slice(0, 3));
  const local = Date.UTC(year, month - 1, day, hour, minute, second, ms);
  const check = new Date(local);
  if (
    check.getUTCFullYear() !== year ||
    check.getUTCMonth() !== month - 1 ||
    check.getUTCDate() !== day ||
    hour > 23 ||
    minute > 59 ||
    second > 59
  ) {
    return undefined;
  }
  if (zone === 'Z') return local;
  const sign = zone.startsWith('-') ? -1 : 1;
  const [offsetHours, offsetMinutes] = zone.slice(1).split(':').map(Number);
  if (offsetHours > 23 || offsetMinutes > 59) return undefined;
  return local - sign * (offsetHours * 60 + offsetMinutes) * 60_000;
}
