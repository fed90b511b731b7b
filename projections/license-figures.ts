import type { RecordedEvent } from '../src/event-store/event-store.port';
import type { SubscriptionStatus } from '../src/subscription/subscription.decider';
import {
  DocumentChange,
  DocumentSnapshot,
  key,
  put,
  remove,
} from '../src/projection-engine/projection';
import { text } from './mfa-scope';

/*
 * A firm's license figures as its subscription stream moves them (DESIGN §3
 * "Usage"), shared by the projections that show them (license-usage, the
 * dashboard's figures now; usage-history, the same figures over time), so
 * that the chart's last point and the dashboard can never disagree:
 *   - the status follows requests, activations and cancellations; a
 *     cancelled subscription keeps its license count and its seats (dormant);
 *   - the license count is the last one activated or changed;
 *   - a seat counts once per user: SeatAssigned adds the user unless they
 *     hold one (a seat moved to a newer enrollment generation), SeatReleased
 *     removes them if they hold one. Seat holders are one small document
 *     each in the `seats` collection, never a growing list.
 */

export interface LicenseFigures {
  status: SubscriptionStatus;
  licenseCount: number;
  seatsInUse: number;
}

/** The subscription-stream events that can move the figures. */
export const LICENSE_FIGURE_EVENTS = [
  'SubscriptionRequested',
  'SubscriptionActivated',
  'LicenseCountChanged',
  'SubscriptionCancelled',
  'SeatAssigned',
  'SeatReleased',
] as const;

export const NO_LICENSES: LicenseFigures = { status: 'none', licenseCount: 0, seatsInUse: 0 };

/**
 * The figures after `event`, and the seat-holder documents it adds or
 * removes (collection `seats`, keyed `{firmId}/{userId}`). `null` when the
 * event changes nothing: another type, or a seat event the dedup rule
 * ignores. Throws on a missing or malformed field (the engine quarantines).
 */
export function licenseFiguresAfter(
  event: RecordedEvent,
  figures: LicenseFigures,
  documents: DocumentSnapshot,
): { figures: LicenseFigures; changes: DocumentChange[] } | null {
  const firmId = event.metadata.firmId;
  switch (event.type) {
    case 'SubscriptionRequested':
      return { figures: { ...figures, status: 'requested' }, changes: [] };
    case 'SubscriptionActivated':
    case 'LicenseCountChanged':
      return {
        figures: { ...figures, status: 'active', licenseCount: count(event, 'licenseCount') },
        changes: [],
      };
    case 'SubscriptionCancelled':
      return { figures: { ...figures, status: 'cancelled' }, changes: [] };
    case 'SeatAssigned': {
      const userId = text(event, 'userId');
      const seat = key(firmId, userId);
      if (documents.get('seats', seat)) return null;
      return {
        figures: { ...figures, seatsInUse: figures.seatsInUse + 1 },
        changes: [put('seats', seat, { firmId, userId })],
      };
    }
    case 'SeatReleased': {
      const seat = key(firmId, text(event, 'userId'));
      if (!documents.get('seats', seat)) return null;
      return {
        figures: { ...figures, seatsInUse: figures.seatsInUse - 1 },
        changes: [remove('seats', seat)],
      };
    }
    default:
      return null;
  }
}

function count(event: RecordedEvent, field: string): number {
  const value = event.data[field];
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) {
    throw new Error(`${event.type}.${field} is not a count`);
  }
  return value;
}
