import type { RecordedEvent } from '../src/event-store/event-store.port';
import { SubscriptionStatus, usageFigures } from '../src/subscription/subscription.decider';
import {
  DocumentChange,
  DocumentSnapshot,
  Projection,
  put,
  ReadModelReader,
} from '../src/projection-engine/projection';
import { LICENSE_FIGURE_EVENTS, licenseFiguresAfter, NO_LICENSES } from './license-figures';

/*
 * License usage (GET /v1/firms/{firmId}/mfa/usage), from the firm's
 * subscription stream only (the rules in license-figures.ts, shared with the
 * usage history):
 *   status        the subscription's status (none until requested)
 *   licenseCount  the last count activated or changed by an operator
 *                 (kept while cancelled, as the subscription keeps it)
 *   seatsInUse    users holding a seat: SeatAssigned adds the user, SeatReleased
 *                 removes them; seats held while cancelled still count (dormant)
 *   unutilized    max(licenseCount - seatsInUse, 0)
 *   usagePercent  floor(100 * seatsInUse / licenseCount), 0 when licenseCount is 0.
 *                 Floor, so 100 means every seat is taken; it can exceed 100 after
 *                 an operator forced the count below the seats in use.
 *                 Both from `usageFigures` (src/subscription), as the emails' figures.
 * Seat holders are one small document each, so a firm with 100,000 seats never
 * rewrites a 100,000-entry list.
 */

interface UsageDoc {
  firmId: string;
  status: SubscriptionStatus;
  licenseCount: number;
  seatsInUse: number;
}

export interface LicenseUsage {
  status: SubscriptionStatus;
  licenseCount: number;
  seatsInUse: number;
  unutilized: number;
  usagePercent: number;
}

export const licenseUsageProjection: Projection = {
  name: 'license-usage',
  version: 1,
  collections: [
    { name: 'usage', fields: [], indexes: [] },
    { name: 'seats', fields: [], indexes: [] },
  ],
  handles: LICENSE_FIGURE_EVENTS,

  evolve(event: RecordedEvent, documents: DocumentSnapshot): DocumentChange[] {
    const firmId = event.metadata.firmId;
    const usage = documents.get<UsageDoc>('usage', firmId) ?? { firmId, ...NO_LICENSES };
    const after = licenseFiguresAfter(event, usage, documents);
    if (!after) return [];
    return [...after.changes, put('usage', firmId, { ...usage, ...after.figures })];
  },
};

export async function licenseUsage(reader: ReadModelReader, firmId: string): Promise<LicenseUsage> {
  const usage = await reader.get<UsageDoc>('usage', firmId);
  // The subscription's own figures (DESIGN §3 "Usage"): the dashboard and the emails agree.
  return {
    status: usage?.status ?? 'none',
    ...usageFigures(usage?.licenseCount ?? 0, usage?.seatsInUse ?? 0),
  };
}
