import { assertNever, Decider, DecisionContext, eventTypesOf } from '../shared/decider';
import { conflict, DomainError } from '../shared/domain-error';

/*
 * The firm's MFA subscription: its status, its plan, the contracted license
 * count, and the seats taken against it. Seats live in this stream so that
 * "seats in use never exceed the license count" (invariant S1) is checked and
 * changed in one append with an expected revision: two confirmations racing
 * for the last seat cannot both win.
 */

export type SubscriptionStatus = 'none' | 'requested' | 'active' | 'cancelled';

export type SubscriptionCommand =
  | { type: 'RequestSubscription'; plan: string | null }
  | { type: 'ActivateSubscription'; plan: string; licenseCount: number }
  | { type: 'ChangeLicenseCount'; licenseCount: number; force: boolean }
  | { type: 'CancelSubscription' }
  /**
   * Taken by a confirmation, for the user's current enrollment generation. A
   * user still holding the seat of an older generation (a reset whose release
   * has not landed yet) moves it to the new one: the count does not change.
   */
  | { type: 'AssignSeat'; userId: string; generation: number; enrollmentId: string | null }
  /**
   * Frees exactly this seat: the user's seat of `generation`, taken for
   * `enrollmentId`. A seat that is not that one any more (moved to a newer
   * generation by a confirmation) is left alone: the decision that asked saw
   * another state.
   */
  | { type: 'ReleaseSeat'; userId: string; reason: string; seat: Seat }
  /**
   * A repair of invariant S2 that could not be made: the user holds a
   * confirmed factor of `generation` but no seat, and none is free. Recorded
   * so that operators see it (/health) instead of a log line.
   */
  | { type: 'RecordSeatRepairFailure'; userId: string; generation: number; reason: string };

export type SubscriptionEvent =
  | { type: 'SubscriptionRequested'; data: { plan: string | null; requestedAt: string } }
  | {
      type: 'SubscriptionActivated';
      data: { plan: string; licenseCount: number; activatedAt: string };
    }
  | {
      type: 'LicenseCountChanged';
      data: {
        licenseCount: number;
        previousLicenseCount: number;
        seatsInUse: number;
        forced: boolean;
        changedAt: string;
      };
    }
  | { type: 'SubscriptionCancelled'; data: { cancelledAt: string } }
  | {
      type: 'SeatAssigned';
      data: {
        userId: string;
        assignedAt: string;
        /** The user's enrollment generation the seat is for (0 in events before version 2). */
        generation: number;
        /** The enrollment whose confirmation took the seat; null before version 2. */
        enrollmentId: string | null;
      };
    }
  | {
      type: 'SeatReleased';
      data: {
        userId: string;
        reason: string;
        releasedAt: string;
        generation: number;
        /** The enrollment the seat was taken for; absent before the exact release. */
        enrollmentId?: string | null;
      };
    }
  /**
   * The seat keeper found a user with a confirmed factor and no seat, and no
   * seat free to give: invariant S2 does not hold for this user until a seat
   * frees up or the user is reset. A later SeatAssigned for the user, or its
   * SeatReleased, closes it.
   */
  | {
      type: 'SeatRepairFailed';
      data: { userId: string; generation: number; reason: string; failedAt: string };
    }
  /**
   * Usage reached a threshold from below (DESIGN §5), in the same append as the
   * seat or license change that made it so: the record of why a license-usage
   * email goes out. The figures are those right after that change.
   */
  | { type: 'LicenseUsageThresholdReached'; data: ThresholdData & { reachedAt: string } }
  /** Usage fell back below a threshold: its next crossing notifies again. */
  | { type: 'LicenseUsageThresholdRearmed'; data: ThresholdData & { rearmedAt: string } };

export interface LicenseUsageFigures {
  licenseCount: number;
  seatsInUse: number;
  unutilized: number;
  usagePercent: number;
}

export type Threshold = 80 | 100;
export const THRESHOLDS: readonly Threshold[] = [80, 100];

type ThresholdData = LicenseUsageFigures & { threshold: Threshold };

export interface SubscriptionState {
  status: SubscriptionStatus;
  plan: string | null;
  licenseCount: number;
  /** Users holding a seat, with the enrollment generation and enrollment it is for. Kept while cancelled: a re-activation restores them. */
  seatHolders: ReadonlyMap<string, Seat>;
  /** Users with a confirmed factor of this generation and no seat, recorded by the seat keeper (S2 broken until a seat is free). */
  seatRepairsFailed: ReadonlyMap<string, number>;
}

export interface Seat {
  generation: number;
  enrollmentId: string | null;
}

export const subscriptionDecider: Decider<
  SubscriptionCommand,
  SubscriptionEvent,
  SubscriptionState,
  DecisionContext
> = {
  eventTypes: eventTypesOf<SubscriptionEvent['type']>({
    SubscriptionRequested: true,
    SubscriptionActivated: true,
    LicenseCountChanged: true,
    SubscriptionCancelled: true,
    SeatAssigned: true,
    SeatReleased: true,
    SeatRepairFailed: true,
    LicenseUsageThresholdReached: true,
    LicenseUsageThresholdRearmed: true,
  }),

  initialState: () => ({
    status: 'none',
    plan: null,
    licenseCount: 0,
    seatHolders: new Map(),
    seatRepairsFailed: new Map(),
  }),

  decide(command, state, context) {
    const events = decideSubscription(command, state, context);
    return [...events, ...thresholdCrossings(state, events, context.now)];
  },

  evolve: evolveSubscription,

  // One copy of the seat holders per batch instead of one per seat event.
  evolveMany(state, events) {
    let seatHolders: Map<string, Seat> | undefined;
    let current = state;
    for (const event of events) {
      if (event.type === 'SeatAssigned') {
        seatHolders ??= new Map(current.seatHolders);
        seatHolders.set(event.data.userId, seatOf(event.data));
        current = withoutRepairFailure(current, event.data.userId);
      } else if (event.type === 'SeatReleased') {
        seatHolders ??= new Map(current.seatHolders);
        seatHolders.delete(event.data.userId);
        current = withoutRepairFailure(current, event.data.userId);
      } else {
        current = evolveSubscription(current, event);
      }
    }
    return seatHolders ? { ...current, seatHolders } : current;
  },
};

function decideSubscription(
  command: SubscriptionCommand,
  state: SubscriptionState,
  { now }: DecisionContext,
): SubscriptionEvent[] {
  switch (command.type) {
    case 'RequestSubscription':
      if (state.status === 'active') {
        throw conflict('subscription-already-active', 'The MFA subscription is already active.');
      }
      if (state.status === 'requested' && state.plan === command.plan) return [];
      return [{ type: 'SubscriptionRequested', data: { plan: command.plan, requestedAt: now } }];

    case 'ActivateSubscription':
      if (state.status === 'none') {
        throw conflict(
          'subscription-not-requested',
          'A firm admin must request the MFA subscription before it can be activated.',
        );
      }
      if (state.status === 'active') {
        if (state.plan === command.plan && state.licenseCount === command.licenseCount) return [];
        throw conflict(
          'subscription-already-active',
          'The MFA subscription is already active; change the license count instead.',
        );
      }
      requireCountCoversSeats(command.licenseCount, state.seatHolders.size);
      return [
        {
          type: 'SubscriptionActivated',
          data: { plan: command.plan, licenseCount: command.licenseCount, activatedAt: now },
        },
      ];

    case 'ChangeLicenseCount':
      requireActive(state);
      if (command.licenseCount === state.licenseCount) return [];
      if (!command.force) requireCountCoversSeats(command.licenseCount, state.seatHolders.size);
      return [
        {
          type: 'LicenseCountChanged',
          data: {
            licenseCount: command.licenseCount,
            previousLicenseCount: state.licenseCount,
            seatsInUse: state.seatHolders.size,
            forced: command.licenseCount < state.seatHolders.size,
            changedAt: now,
          },
        },
      ];

    case 'CancelSubscription':
      if (state.status === 'cancelled') return [];
      if (state.status === 'none') {
        throw conflict('subscription-not-active', 'There is no MFA subscription to cancel.');
      }
      return [{ type: 'SubscriptionCancelled', data: { cancelledAt: now } }];

    case 'AssignSeat': {
      const held = state.seatHolders.get(command.userId);
      if (held && held.generation >= command.generation) return [];
      requireActive(state);
      // A forced lower count can leave usage above it: no seat until usage falls below.
      if (!held && state.seatHolders.size >= state.licenseCount) {
        throw licenseExhausted({
          licenseCount: state.licenseCount,
          seatsInUse: state.seatHolders.size,
        });
      }
      return [
        {
          type: 'SeatAssigned',
          data: {
            userId: command.userId,
            assignedAt: now,
            generation: command.generation,
            enrollmentId: command.enrollmentId,
          },
        },
      ];
    }

    case 'ReleaseSeat': {
      const held = state.seatHolders.get(command.userId);
      if (!held || !sameSeat(held, command.seat)) return [];
      return [
        {
          type: 'SeatReleased',
          data: {
            userId: command.userId,
            reason: command.reason,
            releasedAt: now,
            generation: held.generation,
            enrollmentId: held.enrollmentId,
          },
        },
      ];
    }

    case 'RecordSeatRepairFailure':
      if (state.seatRepairsFailed.get(command.userId) === command.generation) return [];
      return [
        {
          type: 'SeatRepairFailed',
          data: {
            userId: command.userId,
            generation: command.generation,
            reason: command.reason,
            failedAt: now,
          },
        },
      ];

    default:
      return assertNever(command);
  }
}

function seatOf(data: { generation: number; enrollmentId: string | null }): Seat {
  return { generation: data.generation, enrollmentId: data.enrollmentId };
}

export function sameSeat(a: Seat, b: Seat): boolean {
  return a.generation === b.generation && a.enrollmentId === b.enrollmentId;
}

function withoutRepairFailure(state: SubscriptionState, userId: string): SubscriptionState {
  if (!state.seatRepairsFailed.has(userId)) return state;
  const seatRepairsFailed = new Map(state.seatRepairsFailed);
  seatRepairsFailed.delete(userId);
  return { ...state, seatRepairsFailed };
}

function evolveSubscription(state: SubscriptionState, event: SubscriptionEvent): SubscriptionState {
  switch (event.type) {
    case 'SubscriptionRequested':
      return { ...state, status: 'requested', plan: event.data.plan };
    case 'SubscriptionActivated':
      return {
        ...state,
        status: 'active',
        plan: event.data.plan,
        licenseCount: event.data.licenseCount,
      };
    case 'LicenseCountChanged':
      return { ...state, licenseCount: event.data.licenseCount };
    case 'SubscriptionCancelled':
      return { ...state, status: 'cancelled' };
    case 'SeatAssigned':
      return {
        ...withoutRepairFailure(state, event.data.userId),
        seatHolders: new Map(state.seatHolders).set(event.data.userId, seatOf(event.data)),
      };
    case 'SeatReleased': {
      const seatHolders = new Map(state.seatHolders);
      seatHolders.delete(event.data.userId);
      return { ...withoutRepairFailure(state, event.data.userId), seatHolders };
    }
    case 'SeatRepairFailed':
      return {
        ...state,
        seatRepairsFailed: new Map(state.seatRepairsFailed).set(
          event.data.userId,
          event.data.generation,
        ),
      };
    case 'LicenseUsageThresholdReached':
    case 'LicenseUsageThresholdRearmed':
      // Records of what the counts already say: nothing to change.
      return state;
    default:
      return assertNever(event);
  }
}

/**
 * The figures of the usage dashboard (the license-usage projection computes
 * the same): the percent is floored, so 100 means every seat is taken.
 */
export function usageFigures(licenseCount: number, seatsInUse: number): LicenseUsageFigures {
  return {
    licenseCount,
    seatsInUse,
    unutilized: Math.max(licenseCount - seatsInUse, 0),
    usagePercent: licenseCount > 0 ? Math.floor((100 * seatsInUse) / licenseCount) : 0,
  };
}

/**
 * Whether usage is at or above a threshold, in integers: `seats / count >=
 * threshold %`. Seats held against no license at all (a count forced to 0)
 * are over every threshold.
 */
export function usageReaches(threshold: Threshold, licenseCount: number, seatsInUse: number) {
  return licenseCount > 0 ? 100 * seatsInUse >= threshold * licenseCount : seatsInUse > 0;
}

/**
 * The thresholds that the command's events make usage reach from below, or
 * fall back under, comparing the counts before and after them. Whatever the
 * subscription's status: a cancelled subscription keeps its seats and count.
 */
function thresholdCrossings(
  before: SubscriptionState,
  events: readonly SubscriptionEvent[],
  now: string,
): SubscriptionEvent[] {
  if (events.length === 0) return [];
  // Counted, not folded: folding would copy a large firm's seat map once more per command.
  let licenseCount = before.licenseCount;
  let seatsInUse = before.seatHolders.size;
  const holds = new Map<string, boolean>();
  for (const event of events) {
    if (event.type === 'SubscriptionActivated' || event.type === 'LicenseCountChanged') {
      licenseCount = event.data.licenseCount;
    } else if (event.type === 'SeatAssigned' || event.type === 'SeatReleased') {
      const { userId } = event.data;
      const held = holds.get(userId) ?? before.seatHolders.has(userId);
      const holding = event.type === 'SeatAssigned';
      if (held !== holding) seatsInUse += holding ? 1 : -1;
      holds.set(userId, holding);
    }
  }
  const crossings: SubscriptionEvent[] = [];
  for (const threshold of THRESHOLDS) {
    const was = usageReaches(threshold, before.licenseCount, before.seatHolders.size);
    const is = usageReaches(threshold, licenseCount, seatsInUse);
    if (was === is) continue;
    const data = { threshold, ...usageFigures(licenseCount, seatsInUse) };
    crossings.push(
      is
        ? { type: 'LicenseUsageThresholdReached', data: { ...data, reachedAt: now } }
        : { type: 'LicenseUsageThresholdRearmed', data: { ...data, rearmedAt: now } },
    );
  }
  return crossings;
}

function requireActive(state: SubscriptionState): void {
  if (state.status !== 'active') {
    throw conflict('subscription-not-active', 'The MFA subscription of this firm is not active.');
  }
}

function requireCountCoversSeats(licenseCount: number, seatsInUse: number): void {
  if (licenseCount < seatsInUse) {
    throw conflict(
      'license-below-usage',
      `The license count ${licenseCount} is below the ${seatsInUse} seats in use; pass force to lower it anyway.`,
      { licenseCount, seatsInUse },
    );
  }
}

/** A seat is free for a user who does not hold one: usage is below the license count. */
export function seatAvailable(subscription: SubscriptionState): boolean {
  return subscription.seatHolders.size < subscription.licenseCount;
}

/**
 * DESIGN §3 "exhausted licenses": no seat for a user who has none (409
 * license-exhausted); the user bypasses MFA until one is free. One refusal,
 * whether a start, a confirmation or the seat itself refuses.
 */
export function licenseExhausted(extensions: Record<string, unknown> = {}): DomainError {
  return conflict(
    'license-exhausted',
    'All MFA licenses of the firm are in use; the user may log in without MFA until a seat is free.',
    extensions,
  );
}
