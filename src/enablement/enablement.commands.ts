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
import { subscriptionDecider } from '../subscription/subscription.decider';
import {
  CorporationMode,
  EnablementCommand,
  EnablementContext,
  enablementDecider,
  EnablementState,
} from './enablement.decider';

/** GET .../mfa/enablement (API.md): the whole configuration. */
export interface EnablementView {
  caseManagers: boolean;
  vendorCaseManagers: boolean;
  corporations: {
    mode: CorporationMode;
    corpUsers: boolean;
    foreignNationals: boolean;
    specific: Array<{ corporationId: string; corpUsers: boolean; foreignNationals: boolean }>;
  };
}

export function enablementView(state: EnablementState): EnablementView {
  const { mode, all, specific } = state.corporations;
  return {
    caseManagers: state.caseManagers,
    vendorCaseManagers: state.vendorCaseManagers,
    corporations: {
      mode,
      corpUsers: all.corpUsers,
      foreignNationals: all.foreignNationals,
      specific: [...specific.entries()]
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
        .map(([corporationId, switches]) => ({ corporationId, ...switches })),
    },
  };
}

/** A command of the enablement decider, for the firm's enablement stream. */
export class DecideEnablement extends Command<EnablementView & { position: string }> {
  constructor(
    readonly firmId: string,
    readonly command: EnablementCommand,
    readonly envelope: CommandEnvelope,
  ) {
    super();
  }
}

/** The firm's switches, folded from their own stream: always current. */
export class GetEnablement extends Query<EnablementView> {
  constructor(readonly firmId: string) {
    super();
  }
}

@HandlesCommand(DecideEnablement)
export class DecideEnablementHandler implements ICommandHandler<DecideEnablement> {
  constructor(private readonly commands: CommandHandler) {}

  async execute({ firmId, command, envelope }: DecideEnablement) {
    const outcome = await this.commands.handle(
      streams.enablement(firmId),
      enablementDecider,
      command,
      envelope,
      // Enablement needs an active subscription (DESIGN §2.2): read, not locked.
      async (now): Promise<EnablementContext> => {
        const subscription = await this.commands.load(
          streams.subscription(firmId),
          subscriptionDecider,
        );
        return { now, subscriptionStatus: subscription.state.status };
      },
    );
    return { position: String(outcome.position), ...enablementView(outcome.state) };
  }
}

@HandlesQuery(GetEnablement)
export class GetEnablementHandler implements IQueryHandler<GetEnablement> {
  constructor(private readonly commands: CommandHandler) {}

  async execute({ firmId }: GetEnablement): Promise<EnablementView> {
    const { state } = await this.commands.load(streams.enablement(firmId), enablementDecider);
    return enablementView(state);
  }
}
