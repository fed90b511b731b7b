import { Injectable } from '@nestjs/common';
import { CommandHandler } from '../command-handling/command-handler';
import { userDecider } from '../directory/user.decider';
import { enablementDecider } from '../enablement/enablement.decider';
import { streams } from '../shared/ids';
import type { UserFactsSnapshot } from './eligibility.decision';
import { subscriptionDecider } from '../subscription/subscription.decider';

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
