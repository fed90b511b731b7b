import { seatRepairsProjection } from '../../projections/seat-repairs.projection';
import type { SubscriptionEvent } from '../../src/subscription/subscription.decider';
import { T } from './events';
import { event, projectionSpec, recorded } from './projection-spec';

/*
 * Seat repairs that could not be made (invariant S2, DESIGN §3): open from a
 * SeatRepairFailed until the user gets a seat or loses the factor that needed
 * one (its seat is released).
 */
const spec = projectionSpec(seatRepairsProjection);
const subscription = (e: SubscriptionEvent) => recorded(e);

const repairFailed = (userId: string, failedAt = T) =>
  subscription({
    type: 'SeatRepairFailed',
    data: { userId, generation: 2, reason: 'license-exhausted', failedAt },
  });
const seatAssigned = (userId: string) =>
  subscription({
    type: 'SeatAssigned',
    data: { userId, assignedAt: T, generation: 2, enrollmentId: 'enr-1' },
  });
const seatReleased = (userId: string) =>
  subscription({
    type: 'SeatReleased',
    data: { userId, reason: 'enrollment-reset', releasedAt: T, generation: 2 },
  });
const failure = (userId: string, failedAt = T) => ({
  [`acme/${userId}`]: {
    firmId: 'acme',
    userId,
    generation: 2,
    reason: 'license-exhausted',
    failedAt,
  },
});

describe('Seat repairs projection', () => {
  it('records a repair that failed, the latest per user', () => {
    const later = '2026-01-16T09:00:00.000Z';
    spec
      .given([repairFailed('u-1')])
      .when(repairFailed('u-2'), repairFailed('u-1', later))
      .then({ failed: { ...failure('u-1', later), ...failure('u-2') } });
  });

  it('closes it once the user gets a seat, or its seat is released (reset or deactivation)', () => {
    spec
      .given([repairFailed('u-1'), repairFailed('u-2')])
      .when(seatAssigned('u-1'))
      .then({ failed: failure('u-2') });
    spec
      .given([repairFailed('u-1'), repairFailed('u-2')])
      .when(seatReleased('u-2'))
      .then({ failed: failure('u-1') });
    spec
      .given([repairFailed('u-1')])
      .when(seatAssigned('u-2'), seatReleased('u-3'))
      .thenNothingChanges();
  });

  it('is not given an event of a type it does not handle, which would change nothing', () => {
    spec.passesOver(event('SeatRepairScheduled', { userId: 'u-1' }), [repairFailed('u-1')]);
  });

  it('throws on an event it cannot use, which the engine quarantines', () => {
    spec
      .given([])
      .when(event('SeatRepairFailed', { userId: 'u-1', generation: 2, failedAt: T }))
      .thenThrows('SeatRepairFailed.reason is not a string');
  });
});
