import { licenseUsageProjection } from '../../projections/license-usage.projection';
import type { SubscriptionEvent } from '../../src/subscription/subscription.decider';
import { cancelled, requested, T } from './events';
import { event, projectionSpec, recorded } from './projection-spec';

/*
 * License usage (DESIGN §3 "Usage"), from the firm's subscription stream: the
 * status, the license count an operator set, and the users holding a seat.
 */
const spec = projectionSpec(licenseUsageProjection);
const subscription = (e: SubscriptionEvent, firmId = 'acme') => recorded(e, firmId);

const activated = (licenseCount: number) =>
  subscription({
    type: 'SubscriptionActivated',
    data: { plan: 'standard', licenseCount, activatedAt: T },
  });
const countChanged = (licenseCount: number, previousLicenseCount: number) =>
  subscription({
    type: 'LicenseCountChanged',
    data: { licenseCount, previousLicenseCount, seatsInUse: 0, forced: false, changedAt: T },
  });
const seatAssigned = (userId: string, firmId = 'acme') =>
  subscription(
    {
      type: 'SeatAssigned',
      data: { userId, assignedAt: T, generation: 0, enrollmentId: `enr-${userId}` },
    },
    firmId,
  );
const seatReleased = (userId: string) =>
  subscription({
    type: 'SeatReleased',
    data: { userId, reason: 'enrollment-reset', releasedAt: T, generation: 0 },
  });

const usage = (status: string, licenseCount: number, seatsInUse: number) => ({
  firmId: 'acme',
  status,
  licenseCount,
  seatsInUse,
});
const seat = (userId: string) => ({ [`acme/${userId}`]: { firmId: 'acme', userId } });

describe('License usage projection', () => {
  it('follows the subscription: requested, then active with the count the operator set', () => {
    spec
      .given([])
      .when(requested)
      .then({ usage: { acme: usage('requested', 0, 0) } });
    spec
      .given([requested])
      .when(activated(10))
      .then({ usage: { acme: usage('active', 10, 0) } });
    spec
      .given([requested, activated(10)])
      .when(countChanged(25, 10))
      .then({ usage: { acme: usage('active', 25, 0) } });
  });

  it('counts a seat once per user, however often it is assigned, and frees it on release', () => {
    spec
      .given([requested, activated(10)])
      .when(seatAssigned('u-1'), seatAssigned('u-2'))
      .then({ usage: { acme: usage('active', 10, 2) }, seats: { ...seat('u-1'), ...seat('u-2') } });
    spec
      .given([activated(10), seatAssigned('u-1')])
      .when(seatAssigned('u-1'))
      .thenNothingChanges();
    spec
      .given([activated(10), seatAssigned('u-1'), seatAssigned('u-2')])
      .when(seatReleased('u-1'))
      .then({ usage: { acme: usage('active', 10, 1) }, seats: seat('u-2') });
    spec
      .given([activated(10)])
      .when(seatReleased('u-1'))
      .thenNothingChanges();
  });

  it('keeps the count and the seats of a cancelled subscription (dormant) for a re-activation', () => {
    const history = [requested, activated(10), seatAssigned('u-1')];
    spec
      .given(history)
      .when(cancelled)
      .then({ usage: { acme: usage('cancelled', 10, 1) }, seats: seat('u-1') });
    spec
      .given([...history, cancelled])
      .when(activated(10))
      .then({ usage: { acme: usage('active', 10, 1) }, seats: seat('u-1') });
  });

  it('keeps each firm apart', () => {
    spec
      .given([activated(10), seatAssigned('u-1')])
      .when(seatAssigned('u-1', 'globex'))
      .then({
        usage: {
          acme: usage('active', 10, 1),
          globex: { firmId: 'globex', status: 'none', licenseCount: 0, seatsInUse: 1 },
        },
      });
  });

  it('is not given an event of a type it does not handle, which would change nothing', () => {
    spec.passesOver(event('SubscriptionRenamed', { name: 'premium' }), [activated(10)]);
  });

  it('throws on an event it cannot use, which the engine quarantines', () => {
    spec
      .given([])
      .when(event('SubscriptionActivated', { plan: 'p', licenseCount: -1, activatedAt: T }))
      .thenThrows('SubscriptionActivated.licenseCount is not a count');
    spec
      .given([])
      .when(event('SeatAssigned', { userId: 42, assignedAt: T, generation: 0 }))
      .thenThrows('SeatAssigned.userId is not a string');
  });
});
