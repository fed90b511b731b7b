import type { UserState } from '../directory/user.decider';
import { EnablementState, isMfaEnabled } from '../enablement/enablement.decider';
import { seatAvailable, SubscriptionState } from '../subscription/subscription.decider';
import type { Eligibility } from './mfa.decider';

/** The three streams a user's MFA depends on, folded (read by UserFacts). */
export interface UserFactsSnapshot {
  user: UserState;
  subscription: SubscriptionState;
  enablement: EnablementState;
}

/*
 * Whether a user may enroll now: the enablement slice's rule (isMfaEnabled)
 * applied to the user's stream, and the seats of the subscription. Pure.
 */

/** `isMfaEnabled` (the enablement slice's rule, DESIGN §2.2) for a user's stream state. */
export function userIsMfaEnabled(
  user: UserState,
  subscription: SubscriptionState,
  enablement: EnablementState,
): boolean {
  return (
    user.status !== 'unregistered' &&
    isMfaEnabled(
      {
        subscriptionActive: subscription.status === 'active',
        userActive: user.status === 'active',
        role: user.profile.role,
        corporationId: user.profile.corporationId,
      },
      enablement,
    )
  );
}

export function eligibilityOf(facts: UserFactsSnapshot, userId: string): Eligibility {
  const { user, subscription, enablement } = facts;
  const seat = subscription.seatHolders.get(userId);
  const generation = user.status === 'unregistered' ? 0 : user.mfa.generation;
  return {
    mfaEnabled: userIsMfaEnabled(user, subscription, enablement),
    holdsSeat: seat !== undefined && seat.generation >= generation,
    seatAvailable: seatAvailable(subscription),
  };
}
