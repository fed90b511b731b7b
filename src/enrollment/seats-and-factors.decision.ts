import type { DecisionContext } from '../shared/decider';
import { streams } from '../shared/ids';
import { conflict } from '../shared/domain-error';
import { requireRegistered, UserEvent, userDecider, UserState } from '../directory/user.decider';
import type { EnablementState } from '../enablement/enablement.decider';
import { userIsMfaEnabled } from './eligibility.decision';
import {
  Seat,
  SubscriptionEvent,
  subscriptionDecider,
  SubscriptionState,
} from '../subscription/subscription.decider';
import type { DeactivationReason } from '../directory/user.decider';
import {
  confirmFactor,
  type EnrollmentLimits,
  type ResetTrigger,
  type WebAuthnCredential,
} from './mfa.decider';

/*
 * Invariant S2 (DESIGN §3): a user holds a seat exactly while it has a
 * confirmed factor. The seat lives in the firm's subscription stream (where
 * S1 is decided) and the factor in the user's stream, so every decision that
 * changes one of them is made here, over both states at once, and its events
 * are appended to both streams in one atomic append, each at the revision it
 * was read at (CommandHandler.handleAcross; ADR 0013). No crash and no
 * concurrent command can then leave a factor without its seat, or a seat
 * without its factor.
 *
 * Pure: states in, events per stream out; a refusal throws a DomainError and
 * appends nothing.
 */

export interface SeatAndFactorStates {
  subscription: SubscriptionState;
  user: UserState;
}

export interface SeatAndFactorEvents {
  subscription?: SubscriptionEvent[];
  user?: UserEvent[];
}

export interface ConfirmationContext extends DecisionContext {
  /** The firm's switches, read when deciding (not locked: DESIGN §2.2 does not need it). */
  enablement: EnablementState;
}

export interface Confirmation {
  userId: string;
  /** The enrollment being confirmed; its factor id derives from it (`factorIdOf`). */
  enrollmentId: string;
  /** The generation the proof was checked in. */
  generation: number;
  /** TOTP: the time step of the code the caller checked. */
  acceptedStep?: number;
  /** WebAuthn: the key whose attestation the caller verified. */
  credential?: WebAuthnCredential;
  /** The deployment's caps (MFA_MAX_TOTP_FACTORS); the defaults when absent. */
  limits?: EnrollmentLimits;
}

/**
 * Confirms a checked enrollment and gives the user its seat, or moves the
 * seat of an older generation to this one. Refusals: user-not-found,
 * enrollment-not-found, enrollment-expired, user-inactive, mfa-not-enabled,
 * license-exhausted (DESIGN §3 "exhausted licenses"), subscription-not-active.
 * An enrollment already confirmed decides nothing.
 */
export function decideConfirmation(
  states: SeatAndFactorStates,
  confirmation: Confirmation,
  context: ConfirmationContext,
): SeatAndFactorEvents {
  const user = requireRegistered(states.user, confirmation.userId);
  const userEvents = userDecider.decide(
    confirmFactor({ ...confirmation, completing: false }),
    user,
    context,
  );
  if (userEvents.length === 0) return {};
  if (!userIsMfaEnabled(user, states.subscription, context.enablement)) {
    throw conflict('mfa-not-enabled', 'MFA is not enabled for this user.');
  }
  const seat = states.subscription.seatHolders.get(confirmation.userId);
  const holdsSeat = seat !== undefined && seat.generation >= confirmation.generation;
  const subscriptionEvents = holdsSeat
    ? []
    : subscriptionDecider.decide(
        {
          type: 'AssignSeat',
          userId: confirmation.userId,
          generation: confirmation.generation,
          enrollmentId: confirmation.enrollmentId,
        },
        states.subscription,
        context,
      );
  return { subscription: subscriptionEvents, user: userEvents };
}

/**
 * A firm admin's reset (DESIGN §2.6): every factor and pending enrollment of
 * the user goes, the user moves to the next generation, and the seat it held
 * (of any generation) is freed in the same append.
 */
export function decideReset(
  states: SeatAndFactorStates,
  command: { userId: string; reason: string; trigger: ResetTrigger },
  context: DecisionContext,
): SeatAndFactorEvents {
  requireRegistered(states.user, command.userId);
  return {
    user: userDecider.decide({ type: 'ResetEnrollment', ...command }, states.user, context),
    subscription: releaseHeldSeat(states.subscription, command.userId, 'enrollment-reset', context),
  };
}

/**
 * Deactivation (DESIGN §2.7 recycling): the user is deactivated, its
 * enrollment reset and its seat freed, in one append.
 */
export function decideDeactivation(
  states: SeatAndFactorStates,
  command: { userId: string; reason: DeactivationReason },
  context: DecisionContext,
): SeatAndFactorEvents {
  const user = userDecider.decide({ type: 'DeactivateUser', ...command }, states.user, context);
  if (user.length === 0) return {};
  return {
    user,
    subscription: releaseHeldSeat(states.subscription, command.userId, 'user-deactivated', context),
  };
}

/**
 * What the seat keeper does for one user, to bring back S2 after a crash on a
 * store without atomic multi-stream appends, or in history written before
 * them (ADR 0013). Every release names the exact seat it frees, and is
 * appended together with a check of the user's stream, so it can never free a
 * seat that a concurrent confirmation has just come to rely on.
 */
export type SeatRepair =
  | { kind: 'none' }
  | { kind: 'release'; seat: Seat; reason: string }
  | { kind: 'assign'; generation: number; enrollmentId: string | null }
  /** The seat was taken for a checked proof and the factor was never recorded: record it. */
  | { kind: 'complete'; enrollmentId: string; generation: number };

export function seatRepairFor(states: SeatAndFactorStates, userId: string): SeatRepair {
  const seat = states.subscription.seatHolders.get(userId);
  const { user } = states;
  if (user.status === 'unregistered') {
    return seat ? { kind: 'release', seat, reason: 'unknown-user' } : { kind: 'none' };
  }
  const { mfa } = user;
  if (mfa.factors.size > 0) {
    if (seat && seat.generation >= mfa.generation) return { kind: 'none' };
    const [first] = mfa.factors.values();
    return { kind: 'assign', generation: mfa.generation, enrollmentId: first.enrollmentId };
  }
  if (!seat) return { kind: 'none' };
  if (seat.generation === mfa.generation && seat.enrollmentId) {
    const pending = mfa.pending.get(seat.enrollmentId);
    if (pending && (pending.factorType === 'totp' || pending.verifiedCredential)) {
      return { kind: 'complete', enrollmentId: seat.enrollmentId, generation: mfa.generation };
    }
  }
  return { kind: 'release', seat, reason: 'no-confirmed-factor' };
}

function releaseHeldSeat(
  subscription: SubscriptionState,
  userId: string,
  reason: string,
  context: DecisionContext,
): SubscriptionEvent[] {
  const seat = subscription.seatHolders.get(userId);
  if (!seat) return [];
  return subscriptionDecider.decide(
    { type: 'ReleaseSeat', userId, reason, seat },
    subscription,
    context,
  );
}

/**
 * The two streams a seat-and-factor decision spans, in the order a store
 * without atomic multi-stream appends writes them (ADR 0013): `seat-first`
 * for a confirmation (a seat without its factor is completed or freed by the
 * seat keeper), `factor-first` for a reset or a deactivation (the factors go
 * first; a seat left behind is freed by the keeper).
 */
export function userAndSeats(firmId: string, userId: string, order: 'factor-first' | 'seat-first') {
  const user = { streamId: streams.user(firmId, userId), decider: userDecider };
  const subscription = { streamId: streams.subscription(firmId), decider: subscriptionDecider };
  return order === 'seat-first' ? { subscription, user } : { user, subscription };
}
