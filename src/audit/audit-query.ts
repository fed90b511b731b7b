import { corporationDecider } from '../directory/corporation.decider';
import { userDecider } from '../directory/user.decider';
import { enablementDecider } from '../enablement/enablement.decider';
import { securityKeyClaimDecider } from '../enrollment/security-key-claim.decider';
import type { FieldError } from '../http/problem';
import { notificationsDecider } from '../notifications/notifications.decider';
import { ID_PATTERN } from '../shared/ids';
import { INSTANT_MESSAGE, parseInstant } from '../shared/instant';
import { subscriptionDecider } from '../subscription/subscription.decider';
import { verificationDecider } from '../verification/verification.decider';
import { STREAM_HEADS_ANCHORED } from './anchor.decider';

/*
 * What an auditor may ask of the audit endpoints and the CLI, checked in one
 * place so both refuse the same input with the same words: moments in time,
 * event types, a user id.
 */

/** Every event type the service writes: the deciders' own lists, and the anchors. */
export const KNOWN_EVENT_TYPES: ReadonlySet<string> = new Set([
  ...subscriptionDecider.eventTypes,
  ...enablementDecider.eventTypes,
  ...userDecider.eventTypes,
  ...corporationDecider.eventTypes,
  ...securityKeyClaimDecider.eventTypes,
  ...verificationDecider.eventTypes,
  ...notificationsDecider.eventTypes,
  // The chain's anchors (ADR 0017), in each firm's `audit-{firmId}` stream.
  STREAM_HEADS_ANCHORED,
]);

/** Milliseconds of an event's `metadata.occurredAt`, undefined when it is not a time. */
export function occurredAtOf(metadata: unknown): number | undefined {
  const value = (metadata as { occurredAt?: unknown } | null | undefined)?.occurredAt;
  if (typeof value !== 'string') return undefined;
  const ms = Date.parse(value);
  return Number.isNaN(ms) ? undefined : ms;
}

/**
 * What an export keeps, as the trailer repeats it: every field present, null
 * when not asked. Times are normalised to `toISOString()`.
 */
export interface ExportFilters {
  /** Inclusive: events that occurred at or after this time. */
  from: string | null;
  /** Exclusive: events that occurred before this time. */
  to: string | null;
  /** Only events of these types (stored type names), sorted, without repeats. */
  types: string[] | null;
  /** Only events whose `data.userId` is this user. */
  userId: string | null;
}

export const NO_FILTERS: ExportFilters = { from: null, to: null, types: null, userId: null };

/** The export's query as typed (HTTP query string or CLI options); undefined: not given. */
export interface RawExportQuery {
  from?: unknown;
  to?: unknown;
  type?: unknown;
  userId?: unknown;
}

/** The filters, or the field errors that refuse them (400 before a byte is exported). */
export function parseExportFilters(
  raw: RawExportQuery,
): { filters: ExportFilters } | { errors: FieldError[] } {
  const errors: FieldError[] = [];
  const time = (field: 'from' | 'to'): number | undefined => {
    const value = raw[field];
    if (value === undefined) return undefined;
    const ms = typeof value === 'string' ? parseInstant(value) : undefined;
    if (ms === undefined) errors.push({ field, message: INSTANT_MESSAGE });
    return ms;
  };
  const from = time('from');
  const to = time('to');
  if (from !== undefined && to !== undefined && from >= to) {
    errors.push({ field: 'to', message: 'must be after from' });
  }
  let types: string[] | null = null;
  if (raw.type !== undefined) {
    const names = typeof raw.type === 'string' ? raw.type.split(',').map((t) => t.trim()) : [];
    const unknown = names.filter((name) => !KNOWN_EVENT_TYPES.has(name));
    if (unknown.length > 0) {
      errors.push({
        field: 'type',
        message:
          'must be one event type, or several separated by commas, of the event catalog' +
          (unknown.length > 0 && typeof raw.type === 'string' && raw.type.length <= 2000
            ? ` (unknown: ${unknown.slice(0, 5).map(printable).join(', ')})`
            : ''),
      });
    } else {
      types = [...new Set(names)].sort();
    }
  }
  let userId: string | null = null;
  if (raw.userId !== undefined) {
    if (typeof raw.userId === 'string' && ID_PATTERN.test(raw.userId)) userId = raw.userId;
    else {
      errors.push({
        field: 'userId',
        message: 'must be 1-128 characters of A-Z a-z 0-9 . _ : -, and not . or ..',
      });
    }
  }
  if (errors.length > 0) return { errors };
  return {
    filters: {
      from: from === undefined ? null : new Date(from).toISOString(),
      to: to === undefined ? null : new Date(to).toISOString(),
      types,
      userId,
    },
  };
}

/** A name typed by a caller, shown back without control characters and at most 64 characters long. */
function printable(text: string): string {
  const clean = text.replace(/[\p{Cc}\p{Cs}]/gu, '?');
  return JSON.stringify(clean.length > 64 ? `${clean.slice(0, 64)}…` : clean);
}

/** What of an event the filters look at: a stored event or an export's line. */
export interface FilterableEvent {
  type: string;
  data?: unknown;
  metadata?: unknown;
  /** Set when the store could not read the event. */
  corrupt?: string;
}

/**
 * The test of the filters. An event the store could not read is kept by
 * every filter it cannot be ruled out of (its type is always known; its user
 * and its time may not be): an auditor never misses a damaged event that may
 * belong to the answer. Likewise an event without a readable time is kept by
 * a time filter.
 */
export function filterMatcher(filters: ExportFilters): (event: FilterableEvent) => boolean {
  const types = filters.types ? new Set(filters.types) : undefined;
  const from = filters.from === null ? undefined : Date.parse(filters.from);
  const to = filters.to === null ? undefined : Date.parse(filters.to);
  return (event) => {
    if (types && !types.has(event.type)) return false;
    // An unreadable event's data is not known: its user cannot rule it out.
    if (filters.userId !== null && event.corrupt === undefined) {
      const userId = (event.data as { userId?: unknown } | undefined)?.userId;
      if (userId !== filters.userId) return false;
    }
    if (from !== undefined || to !== undefined) {
      const occurred = occurredAtOf(event.metadata);
      if (occurred === undefined) return true;
      if (from !== undefined && occurred < from) return false;
      if (to !== undefined && occurred >= to) return false;
    }
    return true;
  };
}
