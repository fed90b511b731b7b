import type { RecordedEvent } from '../src/event-store/event-store.port';
import { SubscriptionStatus, usageFigures } from '../src/subscription/subscription.decider';
import { key, Projection, ProjectionWriter, ReadModelReader } from './projection';
import { text } from './mfa-scope';

/*
 * License usage (GET /v1/firms/{firmId}/mfa/usage), from the firm's
 * subscription stream only:
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
  handles: [
    'SubscriptionRequested',
    'SubscriptionActivated',
    'LicenseCountChanged',
    'SubscriptionCancelled',
    'SeatAssigned',
    'SeatReleased',
  ],

  async apply(event: RecordedEvent, writer: ProjectionWriter): Promise<void> {
    const firmId = event.metadata.firmId;
    const usage = (await writer.get<UsageDoc>('usage', firmId)) ?? {
      firmId,
      status: 'none',
      licenseCount: 0,
      seatsInUse: 0,
    };
    let next = usage;
    switch (event.type) {
      case 'SubscriptionRequested':
        next = { ...usage, status: 'requested' };
        break;
      case 'SubscriptionActivated':
      case 'LicenseCountChanged':
        next = {
          ...usage,
          status: 'active',
          licenseCount: count(event, 'licenseCount'),
        };
        break;
      case 'SubscriptionCancelled':
        next = { ...usage, status: 'cancelled' };
        break;
      case 'SeatAssigned': {
        const seat = key(firmId, text(event, 'userId'));
        if (await writer.get('seats', seat)) return;
        writer.put('seats', seat, { firmId, userId: text(event, 'userId') });
        next = { ...usage, seatsInUse: usage.seatsInUse + 1 };
        break;
      }
      case 'SeatReleased': {
        const seat = key(firmId, text(event, 'userId'));
        if (!(await writer.get('seats', seat))) return;
        writer.delete('seats', seat);
        next = { ...usage, seatsInUse: usage.seatsInUse - 1 };
        break;
      }
    }
    writer.put('usage', firmId, next);
  },
};

function count(event: RecordedEvent, field: string): number {
  const value = event.data[field];
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) {
    throw new Error(`${event.type}.${field} is not a count`);
  }
  return value;
}

export async function licenseUsage(reader: ReadModelReader, firmId: string): Promise<LicenseUsage> {
  const usage = await reader.get<UsageDoc>('usage', firmId);
  // The subscription's own figures (DESIGN §3 "Usage"): the dashboard and the emails agree.
  return {
    status: usage?.status ?? 'none',
    ...usageFigures(usage?.licenseCount ?? 0, usage?.seatsInUse ?? 0),
  };
}
