import {
  Command,
  CommandHandler as HandlesCommand,
  ICommandHandler,
  IQueryHandler,
  Query,
  QueryHandler as HandlesQuery,
} from '@nestjs/cqrs';
import { CommandEnvelope, CommandHandler } from '../command-handling/command-handler';
import { streams } from '../shared/ids';
import {
  SubscriptionCommand,
  subscriptionDecider,
  SubscriptionState,
} from './subscription.decider';

/** GET .../mfa/subscription (API.md). */
export interface SubscriptionView {
  status: SubscriptionState['status'];
  plan: string | null;
  licenseCount: number;
}

export type SubscriptionAnswer = SubscriptionView & { position: string };

const view = (state: SubscriptionState): SubscriptionView => ({
  status: state.status,
  plan: state.plan,
  licenseCount: state.licenseCount,
});

/** A command of the subscription decider, for the firm's subscription stream. */
export class DecideSubscription extends Command<SubscriptionAnswer> {
  constructor(
    readonly firmId: string,
    readonly command: SubscriptionCommand,
    readonly envelope: CommandEnvelope,
  ) {
    super();
  }
}

/** The firm's subscription, folded from its own stream: always current. */
export class GetSubscription extends Query<SubscriptionView> {
  constructor(readonly firmId: string) {
    super();
  }
}

@HandlesCommand(DecideSubscription)
export class DecideSubscriptionHandler implements ICommandHandler<DecideSubscription> {
  constructor(private readonly commands: CommandHandler) {}

  async execute({ firmId, command, envelope }: DecideSubscription): Promise<SubscriptionAnswer> {
    const outcome = await this.commands.handle(
      streams.subscription(firmId),
      subscriptionDecider,
      command,
      envelope,
    );
    return { position: String(outcome.position), ...view(outcome.state) };
  }
}

@HandlesQuery(GetSubscription)
export class GetSubscriptionHandler implements IQueryHandler<GetSubscription> {
  constructor(private readonly commands: CommandHandler) {}

  async execute({ firmId }: GetSubscription): Promise<SubscriptionView> {
    const { state } = await this.commands.load(streams.subscription(firmId), subscriptionDecider);
    return view(state);
  }
}
