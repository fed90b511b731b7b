import fc from 'fast-check';
import { fold } from '../../src/shared/decider';
import { DomainError } from '../../src/shared/domain-error';
import {
  SubscriptionCommand,
  subscriptionDecider,
  SubscriptionEvent,
  Threshold,
  usageReaches,
} from '../../src/subscription/subscription.decider';
import { deciderSpec } from '../support/decider-spec';

const now = '2026-01-15T09:00:00.000Z';
const spec = deciderSpec(subscriptionDecider, { now });

// Commands, in the words of DESIGN.md.
const request = (plan: string | null = 'standard'): SubscriptionCommand => ({
  type: 'RequestSubscription',
  plan,
});
const activate = (licenseCount: number, plan = 'standard'): SubscriptionCommand => ({
  type: 'ActivateSubscription',
  plan,
  licenseCount,
});
const changeLicenseCount = (licenseCount: number, force = false): SubscriptionCommand => ({
  type: 'ChangeLicenseCount',
  licenseCount,
  force,
});
const cancel: SubscriptionCommand = { type: 'CancelSubscription' };
const assignSeat = (userId: string, generation = 0): SubscriptionCommand => ({
  type: 'AssignSeat',
  userId,
  generation,
  enrollmentId: `enr-${userId}-${generation}`,
});
/** Releases exactly the seat `seatAssigned(userId, generation)` gave. */
const releaseSeat = (
  userId: string,
  reason = 'enrollment-reset',
  generation = 0,
): SubscriptionCommand => ({
  type: 'ReleaseSeat',
  userId,
  reason,
  seat: { generation, enrollmentId: `enr-${userId}-${generation}` },
});

// Facts.
const requested = (plan: string | null = 'standard'): SubscriptionEvent => ({
  type: 'SubscriptionRequested',
  data: { plan, requestedAt: now },
});
const activated = (licenseCount: number, plan = 'standard'): SubscriptionEvent => ({
  type: 'SubscriptionActivated',
  data: { plan, licenseCount, activatedAt: now },
});
const licenseCountChanged = (
  previousLicenseCount: number,
  licenseCount: number,
  seatsInUse: number,
  forced = false,
): SubscriptionEvent => ({
  type: 'LicenseCountChanged',
  data: { licenseCount, previousLicenseCount, seatsInUse, forced, changedAt: now },
});
const cancelled: SubscriptionEvent = { type: 'SubscriptionCancelled', data: { cancelledAt: now } };
const seatAssigned = (userId: string, generation = 0): SubscriptionEvent => ({
  type: 'SeatAssigned',
  data: { userId, assignedAt: now, generation, enrollmentId: `enr-${userId}-${generation}` },
});
const seatReleased = (
  userId: string,
  reason = 'enrollment-reset',
  generation = 0,
): SubscriptionEvent => ({
  type: 'SeatReleased',
  data: {
    userId,
    reason,
    releasedAt: now,
    generation,
    enrollmentId: `enr-${userId}-${generation}`,
  },
});
const figures = (licenseCount: number, seatsInUse: number) => ({
  licenseCount,
  seatsInUse,
  unutilized: Math.max(licenseCount - seatsInUse, 0),
  usagePercent: licenseCount > 0 ? Math.floor((100 * seatsInUse) / licenseCount) : 0,
});
const reached = (
  threshold: Threshold,
  licenseCount: number,
  seatsInUse: number,
): SubscriptionEvent => ({
  type: 'LicenseUsageThresholdReached',
  data: { threshold, ...figures(licenseCount, seatsInUse), reachedAt: now },
});
const rearmed = (
  threshold: Threshold,
  licenseCount: number,
  seatsInUse: number,
): SubscriptionEvent => ({
  type: 'LicenseUsageThresholdRearmed',
  data: { threshold, ...figures(licenseCount, seatsInUse), rearmedAt: now },
});

// Histories.
const active = (licenseCount: number, ...seatHolders: string[]): SubscriptionEvent[] => [
  requested(),
  activated(licenseCount),
  ...seatHolders.map((userId) => seatAssigned(userId)),
];
const notActive: Array<[string, SubscriptionEvent[]]> = [
  ['never requested', []],
  ['requested, not yet activated', [requested()]],
  ['cancelled', [...active(3), cancelled]],
];

describe('Subscription', () => {
  describe('a firm admin requests the MFA subscription', () => {
    it('a first request is recorded with its plan', () => {
      spec
        .given([])
        .when(request('standard'))
        .then([requested('standard')]);
    });

    it('the plan may be left for the operator to choose', () => {
      spec
        .given([])
        .when(request(null))
        .then([requested(null)]);
    });

    it('requesting again with the same plan changes nothing', () => {
      spec
        .given([requested('standard')])
        .when(request('standard'))
        .then([]);
    });

    it('requesting again with another plan records the new plan', () => {
      spec
        .given([requested('standard')])
        .when(request('premium'))
        .then([requested('premium')]);
    });

    it('an active subscription cannot be requested again', () => {
      spec.given(active(5)).when(request()).thenThrows('subscription-already-active', 'conflict');
    });

    it('after a cancellation, the subscription can be requested again', () => {
      spec
        .given([...active(5), cancelled])
        .when(request())
        .then([requested()]);
    });
  });

  describe('an operator activates the subscription with a plan and a license count', () => {
    it('a subscription never requested cannot be activated', () => {
      spec.given([]).when(activate(5)).thenThrows('subscription-not-requested', 'conflict');
    });

    it("a requested subscription becomes active with the operator's plan and license count", () => {
      spec
        .given([requested('standard')])
        .when(activate(10, 'premium'))
        .then([activated(10, 'premium')]);
    });

    it('activating again with the same plan and license count changes nothing', () => {
      spec.given(active(5)).when(activate(5)).then([]);
    });

    it.each([
      ['another license count', activate(6, 'standard')],
      ['another plan', activate(5, 'premium')],
    ])(
      'activating an active subscription again with %s is refused: the license count is changed instead',
      (_, command) => {
        spec.given(active(5)).when(command).thenThrows('subscription-already-active', 'conflict');
      },
    );

    describe('re-activation after a cancellation restores the dormant seats', () => {
      const cancelledWithTwoSeats = [...active(5, 'ann', 'bob'), cancelled];

      it('a cancelled subscription is re-activated', () => {
        spec
          .given(cancelledWithTwoSeats)
          .when(activate(3))
          .then([activated(3)]);
      });

      it('the users who held a seat before the cancellation hold it again', () => {
        const reactivated = [...cancelledWithTwoSeats, activated(3)];
        spec.given(reactivated).when(assignSeat('ann')).then([]);
        spec
          .given(reactivated)
          .when(releaseSeat('bob'))
          .then([seatReleased('bob')]);
      });

      it('the dormant seats count against the new license count', () => {
        spec
          .given([...cancelledWithTwoSeats, activated(2)])
          .when(assignSeat('cid'))
          .thenThrows('license-exhausted');
      });

      it('re-activation with exactly as many licenses as dormant seats is allowed', () => {
        spec
          .given(cancelledWithTwoSeats)
          .when(activate(2))
          .then([activated(2), reached(80, 2, 2), reached(100, 2, 2)]);
      });

      it('re-activation with fewer licenses than dormant seats is refused', () => {
        const error = spec
          .given(cancelledWithTwoSeats)
          .when(activate(1))
          .thenThrows('license-below-usage', 'conflict');
        expect(error.extensions).toEqual({ licenseCount: 1, seatsInUse: 2 });
      });
    });
  });

  describe('an operator changes the license count', () => {
    it.each(notActive)(
      'the license count cannot be changed when the subscription is %s',
      (_, history) => {
        spec
          .given(history)
          .when(changeLicenseCount(10))
          .thenThrows('subscription-not-active', 'conflict');
      },
    );

    it('setting the current license count changes nothing, forced or not', () => {
      spec.given(active(5, 'ann')).when(changeLicenseCount(5)).then([]);
      spec.given(active(5, 'ann')).when(changeLicenseCount(5, true)).then([]);
    });

    it('raising the count is recorded with the previous count and the seats in use', () => {
      spec
        .given(active(5, 'ann', 'bob'))
        .when(changeLicenseCount(8))
        .then([licenseCountChanged(5, 8, 2)]);
    });

    it('lowering the count while it still covers the seats in use is allowed', () => {
      spec
        .given(active(5, 'ann', 'bob'))
        .when(changeLicenseCount(3))
        .then([licenseCountChanged(5, 3, 2)]);
    });

    it('lowering the count to exactly the seats in use is allowed', () => {
      spec
        .given(active(5, 'ann', 'bob'))
        .when(changeLicenseCount(2))
        .then([licenseCountChanged(5, 2, 2), reached(80, 2, 2), reached(100, 2, 2)]);
    });

    it('lowering the license count below the seats in use is refused unless forced', () => {
      const error = spec
        .given(active(5, 'ann', 'bob', 'cid'))
        .when(changeLicenseCount(2))
        .thenThrows('license-below-usage', 'conflict');
      expect(error.extensions).toEqual({ licenseCount: 2, seatsInUse: 3 });
    });

    it('a forced lowering below the seats in use is allowed and recorded as forced', () => {
      spec
        .given(active(5, 'ann', 'bob', 'cid'))
        .when(changeLicenseCount(1, true))
        .then([licenseCountChanged(5, 1, 3, true), reached(80, 1, 3), reached(100, 1, 3)]);
    });

    it('"forced" records a count below usage, not the flag: a forced change that covers usage is a plain change', () => {
      spec
        .given(active(5, 'ann', 'bob'))
        .when(changeLicenseCount(4, true))
        .then([licenseCountChanged(5, 4, 2, false)]);
    });
  });

  describe('an operator cancels the subscription', () => {
    it('an active subscription is cancelled (its seats stay, dormant)', () => {
      spec.given(active(5, 'ann')).when(cancel).then([cancelled]);
    });

    it('a pending request can be cancelled', () => {
      spec.given([requested()]).when(cancel).then([cancelled]);
    });

    it('cancelling a cancelled subscription changes nothing', () => {
      spec
        .given([...active(5), cancelled])
        .when(cancel)
        .then([]);
    });

    it('without a subscription there is nothing to cancel', () => {
      spec.given([]).when(cancel).thenThrows('subscription-not-active', 'conflict');
    });
  });

  describe('seats follow the enrollment generation', () => {
    it('a user confirming again in the same generation keeps its one seat', () => {
      spec.given(active(1, 'ann')).when(assignSeat('ann')).then([]);
    });

    it('a seat of an older generation moves to the new one without taking a license, even when none is free', () => {
      spec
        .given(active(1, 'ann'))
        .when(assignSeat('ann', 1))
        .then([seatAssigned('ann', 1)]);
    });

    it('a late assignment for an older generation changes nothing', () => {
      spec
        .given([...active(2, 'ann'), seatAssigned('ann', 2)])
        .when(assignSeat('ann', 1))
        .then([]);
    });
  });

  describe('a user takes a seat at the first confirmed factor', () => {
    it('a seat is assigned while a license is free', () => {
      spec
        .given(active(3, 'ann'))
        .when(assignSeat('bob'))
        .then([seatAssigned('bob')]);
    });

    it.each(notActive)('no seat is given when the subscription is %s', (_, history) => {
      spec.given(history).when(assignSeat('ann')).thenThrows('subscription-not-active', 'conflict');
    });

    it('when every license is in use, no seat is given', () => {
      const error = spec
        .given(active(2, 'ann', 'bob'))
        .when(assignSeat('cid'))
        .thenThrows('license-exhausted', 'conflict');
      expect(error.extensions).toEqual({ licenseCount: 2, seatsInUse: 2 });
    });

    it('a user who already holds a seat keeps it: assigning it again changes nothing, even with every license in use', () => {
      spec
        .given(active(2, 'ann', 'bob'))
        .when(assignSeat('ann'))
        .then([]);
    });

    it('a seat kept dormant by a cancellation is not assigned twice', () => {
      spec
        .given([...active(2, 'ann'), cancelled])
        .when(assignSeat('ann'))
        .then([]);
    });

    it('a license freed by a reset can be taken by another user', () => {
      spec
        .given([...active(3, 'ann', 'bob'), seatReleased('ann')])
        .when(assignSeat('cid'))
        .then([seatAssigned('cid')]);
    });

    describe('after a forced lowering below usage, no new seat is given until usage falls below the count', () => {
      const forcedToOne = [...active(3, 'ann', 'bob', 'cid'), licenseCountChanged(3, 1, 3, true)];

      it('usage above the count: refused', () => {
        spec.given(forcedToOne).when(assignSeat('dan')).thenThrows('license-exhausted');
        spec
          .given([...forcedToOne, seatReleased('ann')])
          .when(assignSeat('dan'))
          .thenThrows('license-exhausted');
      });

      it('usage equal to the count: still refused', () => {
        spec
          .given([...forcedToOne, seatReleased('ann'), seatReleased('bob')])
          .when(assignSeat('dan'))
          .thenThrows('license-exhausted');
      });

      it('usage below the count: a seat is given again', () => {
        spec
          .given([...forcedToOne, seatReleased('ann'), seatReleased('bob'), seatReleased('cid')])
          .when(assignSeat('dan'))
          .then([seatAssigned('dan'), reached(80, 1, 1), reached(100, 1, 1)]);
      });
    });
  });

  describe('a reset or a deactivation frees the seat', () => {
    it('the seat is released with its reason', () => {
      spec
        .given(active(2, 'ann'))
        .when(releaseSeat('ann', 'user-deactivated'))
        .then([seatReleased('ann', 'user-deactivated')]);
    });

    it('releasing a seat the user does not hold changes nothing', () => {
      spec.given(active(2, 'ann')).when(releaseSeat('bob')).then([]);
      spec
        .given([...active(2, 'ann'), seatReleased('ann')])
        .when(releaseSeat('ann'))
        .then([]);
    });

    it('a release names the exact seat it ends: a seat moved to a newer generation or enrollment stays', () => {
      spec
        .given([...active(2, 'ann'), seatAssigned('ann', 1)])
        .when(releaseSeat('ann', 'enrollment-reset', 0))
        .then([]);
      spec
        .given([...active(2, 'ann'), seatAssigned('ann', 1)])
        .when({
          type: 'ReleaseSeat',
          userId: 'ann',
          reason: 'no-confirmed-factor',
          seat: { generation: 1, enrollmentId: 'another-enrollment' },
        })
        .then([]);
      spec
        .given([...active(2, 'ann'), seatAssigned('ann', 1)])
        .when(releaseSeat('ann', 'enrollment-reset', 1))
        .then([seatReleased('ann', 'enrollment-reset', 1)]);
    });

    it('a seat repair that cannot be made is recorded once, and closed by the seat', () => {
      const failure: SubscriptionCommand = {
        type: 'RecordSeatRepairFailure',
        userId: 'bob',
        generation: 0,
        reason: 'license-exhausted',
      };
      const failed: SubscriptionEvent = {
        type: 'SeatRepairFailed',
        data: { userId: 'bob', generation: 0, reason: 'license-exhausted', failedAt: now },
      };
      spec.given(active(1, 'ann')).when(failure).then([failed]);
      spec
        .given([...active(1, 'ann'), failed])
        .when(failure)
        .then([]);
      expect(fold(subscriptionDecider, [...active(1, 'ann'), failed]).seatRepairsFailed).toEqual(
        new Map([['bob', 0]]),
      );
      expect(
        fold(subscriptionDecider, [...active(1, 'ann'), failed, seatAssigned('bob')])
          .seatRepairsFailed.size,
      ).toBe(0);
    });

    it('a dormant seat is freed even while the subscription is cancelled', () => {
      spec
        .given([...active(2, 'ann'), cancelled])
        .when(releaseSeat('ann', 'user-deactivated'))
        .then([seatReleased('ann', 'user-deactivated')]);
    });
  });

  describe('license usage thresholds: 80 % and 100 % are recorded when reached from below, and re-armed below (DESIGN §5)', () => {
    const tenLicenses = (...holders: string[]) => active(10, ...holders);
    const seven = ['u1', 'u2', 'u3', 'u4', 'u5', 'u6', 'u7'];

    it('the seat that brings usage to 80 % records the threshold with the figures after it', () => {
      spec
        .given(tenLicenses(...seven))
        .when(assignSeat('u8'))
        .then([seatAssigned('u8'), reached(80, 10, 8)]);
    });

    it('seats between 80 % and 100 % record nothing more', () => {
      spec
        .given(tenLicenses(...seven, 'u8'))
        .when(assignSeat('u9'))
        .then([seatAssigned('u9')]);
    });

    it('the last free seat records 100 %', () => {
      spec
        .given(tenLicenses(...seven, 'u8', 'u9'))
        .when(assignSeat('u10'))
        .then([seatAssigned('u10'), reached(100, 10, 10)]);
    });

    it('a seat freed below a threshold re-arms it, once', () => {
      const full = [...tenLicenses(...seven, 'u8', 'u9', 'u10'), reached(80, 10, 8)];
      spec
        .given(full)
        .when(releaseSeat('u10'))
        .then([seatReleased('u10'), rearmed(100, 10, 9)]);
      spec
        .given([...full, seatReleased('u10'), seatReleased('u9')])
        .when(releaseSeat('u8'))
        .then([seatReleased('u8'), rearmed(80, 10, 7)]);
    });

    it('a license change that makes usage jump from below 80 % to 100 % records both', () => {
      spec
        .given(tenLicenses(...seven))
        .when(changeLicenseCount(7))
        .then([licenseCountChanged(10, 7, 7), reached(80, 7, 7), reached(100, 7, 7)]);
    });

    it('more licenses re-arm both thresholds at once', () => {
      spec
        .given(active(7, ...seven))
        .when(changeLicenseCount(20))
        .then([licenseCountChanged(7, 20, 7), rearmed(80, 20, 7), rearmed(100, 20, 7)]);
    });

    it('79 of 100 seats has not reached 80 %; the 80th seat has', () => {
      const holders = Array.from({ length: 78 }, (_, n) => `v${n}`);
      spec
        .given(active(100, ...holders))
        .when(assignSeat('w79'))
        .then([seatAssigned('w79')]);
      spec
        .given(active(100, ...holders, 'w79'))
        .when(assignSeat('w80'))
        .then([seatAssigned('w80'), reached(80, 100, 80)]);
    });

    it('a seat moving to a newer enrollment generation takes no license and crosses nothing', () => {
      spec
        .given(tenLicenses(...seven, 'u8'))
        .when(assignSeat('u8', 1))
        .then([seatAssigned('u8', 1)]);
    });

    it('re-activation with fewer licenses can reach both thresholds for the dormant seats', () => {
      spec
        .given([...active(10, 'ann', 'bob'), cancelled])
        .when(activate(2))
        .then([activated(2), reached(80, 2, 2), reached(100, 2, 2)]);
    });

    it('for any history, each threshold alternates reached / re-armed and its last record matches the counts', () => {
      const users = ['ann', 'bob', 'cid', 'dan', 'eve'];
      const anyCommand: fc.Arbitrary<SubscriptionCommand> = fc.oneof(
        fc.constantFrom(...users).map((userId) => assignSeat(userId)),
        fc.constantFrom(...users).map((userId) => releaseSeat(userId)),
        fc
          .record({ licenseCount: fc.integer({ min: 0, max: 6 }), force: fc.boolean() })
          .map(({ licenseCount, force }) => changeLicenseCount(licenseCount, force)),
      );
      fc.assert(
        fc.property(
          fc.integer({ min: 1, max: 6 }),
          fc.array(anyCommand, { maxLength: 50 }),
          (initial, commands) => {
            const history = active(initial);
            for (const command of commands) {
              try {
                history.push(
                  ...subscriptionDecider.decide(command, fold(subscriptionDecider, history), {
                    now,
                  }),
                );
              } catch (error: unknown) {
                if (!(error instanceof DomainError)) throw error;
              }
            }
            const state = fold(subscriptionDecider, history);
            for (const threshold of [80, 100] as const) {
              const records = history.filter(
                (event) =>
                  (event.type === 'LicenseUsageThresholdReached' ||
                    event.type === 'LicenseUsageThresholdRearmed') &&
                  event.data.threshold === threshold,
              );
              records.forEach((record, i) =>
                expect(record.type).toBe(
                  i % 2 === 0 ? 'LicenseUsageThresholdReached' : 'LicenseUsageThresholdRearmed',
                ),
              );
              expect(records.length % 2 === 1).toBe(
                usageReaches(threshold, state.licenseCount, state.seatHolders.size),
              );
            }
          },
        ),
        { numRuns: 300 },
      );
    });
  });

  it('folding a batch at once (evolveMany) equals folding event by event', () => {
    const users = ['ann', 'bob', 'cid', 'dan'];
    const anyEvent: fc.Arbitrary<SubscriptionEvent> = fc.oneof(
      fc
        .tuple(fc.constantFrom(...users), fc.nat(3))
        .map(([userId, generation]) => seatAssigned(userId, generation)),
      fc.constantFrom(...users).map((userId) => seatReleased(userId)),
      fc.nat(9).map((count) => licenseCountChanged(0, count, 0)),
      fc.constant(cancelled),
      fc.nat(9).map((count) => activated(count)),
    );
    fc.assert(
      fc.property(fc.array(anyEvent, { maxLength: 40 }), fc.nat(40), (events, cut) => {
        const oneByOne = events.reduce(
          subscriptionDecider.evolve,
          subscriptionDecider.initialState(),
        );
        const head = events.slice(0, cut);
        const batched = subscriptionDecider.evolveMany!(
          subscriptionDecider.evolveMany!(subscriptionDecider.initialState(), head),
          events.slice(cut),
        );
        expect(batched).toEqual(oneByOne);
      }),
      { numRuns: 300 },
    );
  });

  describe('invariant S1: seats in use never exceed the license count', () => {
    const users = ['ann', 'bob', 'cid', 'dan', 'eve', 'fay'];
    const anyCommand: fc.Arbitrary<SubscriptionCommand> = fc.oneof(
      fc.constantFrom(...users).map((userId) => assignSeat(userId)),
      fc.constantFrom(...users).map((userId) => releaseSeat(userId)),
      fc
        .record({ licenseCount: fc.integer({ min: 0, max: 7 }), force: fc.boolean() })
        .map(({ licenseCount, force }) => changeLicenseCount(licenseCount, force)),
    );

    it('holds for any sequence of seat assignments, releases and license changes, except after a forced lowering, where seats never grow', () => {
      fc.assert(
        fc.property(
          fc.integer({ min: 0, max: 5 }),
          fc.array(anyCommand, { maxLength: 60 }),
          (initialLicenseCount, commands) => {
            const history = active(initialLicenseCount);
            let lastForced = false;
            for (const command of commands) {
              const before = fold(subscriptionDecider, history);
              let events: SubscriptionEvent[];
              try {
                events = subscriptionDecider.decide(command, before, { now });
              } catch (error: unknown) {
                if (error instanceof DomainError) continue; // a refusal changes nothing
                throw error;
              }
              history.push(...events);
              for (const event of events) {
                if (event.type === 'LicenseCountChanged') lastForced = event.data.forced;
              }
              const after = fold(subscriptionDecider, history);
              const seatsInUse = after.seatHolders.size;
              if (seatsInUse > after.licenseCount) {
                expect(lastForced).toBe(true);
                expect(seatsInUse).toBeLessThanOrEqual(before.seatHolders.size);
              }
            }
          },
        ),
        { numRuns: 300 },
      );
    });
  });
});
