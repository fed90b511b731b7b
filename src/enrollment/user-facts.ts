import { Injectable } from '@nestjs/common';
import { CommandHandler } from '../command-handling/command-handler';
import { userDecider, UserState } from '../directory/user.decider';
import { enablementDecider, EnablementState } from '../enablement/enablement.decider';
import { userIsMfaEnabled } from '../enablement/enablement.decider';
import { seatAvailable } from '../subscription/subscription.decider';
import { streams } from '../shared/ids';
import { subscriptionDecider, SubscriptionState } from '../subscription/subscription.decider';
import type { Eligibility } from './mfa.decider';

export interface UserFactsSnapshot {
  user: UserState;
  subscription: SubscriptionState;
  enablement: EnablementState;
}

/**
 * The three streams a user's MFA depends on, read together: the user (with
 * its factors), the firm's subscription (with the seats) and the firm's
 * enablement switches. Each comes from the command handler's folded-state
 * cache, so a read costs the events appended since the last one.
 */
@Injectable()
export class UserFacts {
  constructor(private readonly commands: CommandHandler) {}

  async of(firmId: string, userId: string): Promise<UserFactsSnapshot> {
    const [user, subscription, enablement] = await Promise.all([
      this.commands.load(streams.user(firmId, userId), userDecider),
      this.commands.load(streams.subscription(firmId), subscriptionDecider),
      this.commands.load(streams.enablement(firmId), enablementDecider),
    ]);
    return { user: user.state, subscription: subscription.state, enablement: enablement.state };
  }
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
