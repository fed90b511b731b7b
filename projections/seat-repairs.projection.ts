import type { RecordedEvent } from '../src/event-store/event-store.port';
import {
  DocumentChange,
  DocumentSnapshot,
  key,
  Projection,
  put,
  ReadModelReader,
  remove,
} from '../src/projection-engine/projection';
import { text } from './mfa-scope';

/*
 * Seat repairs that could not be made (operators, /health): a user the seat
 * keeper found with a confirmed factor and no seat, when no seat was free to
 * give (SeatRepairFailed in the firm's subscription stream). Invariant S2
 * (DESIGN §3) does not hold for that user until the repair is made: a
 * SeatAssigned for the user (a seat freed up), or a SeatReleased (the user was
 * reset or deactivated), closes it.
 *
 * One document per (firm, user), with the generation, the reason and when.
 */

export interface SeatRepairFailure {
  firmId: string;
  userId: string;
  generation: number;
  reason: string;
  failedAt: string;
}

export const seatRepairsProjection: Projection = {
  name: 'seat-repairs',
  version: 1,
  collections: [{ name: 'failed', fields: ['firmId'], indexes: [['firmId', 'id']] }],
  handles: ['SeatRepairFailed', 'SeatAssigned', 'SeatReleased'],

  evolve(event: RecordedEvent, documents: DocumentSnapshot): DocumentChange[] {
    const firmId = event.metadata.firmId;
    switch (event.type) {
      case 'SeatRepairFailed': {
        const userId = text(event, 'userId');
        const failure: SeatRepairFailure = {
          firmId,
          userId,
          generation: Number(event.data.generation),
          reason: text(event, 'reason'),
          failedAt: text(event, 'failedAt'),
        };
        return [put('failed', key(firmId, userId), failure)];
      }
      case 'SeatAssigned':
      case 'SeatReleased': {
        const id = key(firmId, text(event, 'userId'));
        return documents.get('failed', id) ? [remove('failed', id)] : [];
      }
      default:
        return [];
    }
  },
};

/** Open failures, oldest keys first, at most `limit` (for /health's operator details). */
export function seatRepairFailures(
  reader: ReadModelReader,
  limit: number,
): Promise<SeatRepairFailure[]> {
  return reader.find<SeatRepairFailure>('failed', { orderBy: ['id'], limit });
}
