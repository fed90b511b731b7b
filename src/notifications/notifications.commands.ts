import {
  Command,
  CommandHandler as HandlesCommand,
  ICommandHandler,
  IQueryHandler,
  Query,
  QueryHandler as HandlesQuery,
} from '@nestjs/cqrs';
import { failedEmailsOfFirm } from '../../projections/failed-emails.projection';
import { CommandEnvelope, CommandHandler } from '../command-handling/command-handler';
import { userDecider } from '../directory/user.decider';
import { ProjectionEngine } from '../projection-engine/projection-engine';
import { streams } from '../shared/ids';
import { recipientOf } from './notification-policy';
import { notificationsDecider, Recipient, retryMessageId } from './notifications.decider';

type FailedEmailsPage = Awaited<ReturnType<typeof failedEmailsOfFirm>>;

/** The firm's emails the mail server refused for good, oldest first (DESIGN §5). */
export class ListFailedEmails extends Query<FailedEmailsPage> {
  constructor(
    readonly firmId: string,
    readonly filter: Parameters<typeof failedEmailsOfFirm>[2],
  ) {
    super();
  }
}

/** Queue a failed email again, to the address the user's stream has now. */
export class RetryEmail extends Command<{
  position: string;
  messageId: string;
  retryOf: string;
  recipient: Recipient | null;
}> {
  constructor(
    readonly firmId: string,
    readonly messageId: string,
    readonly envelope: CommandEnvelope,
  ) {
    super();
  }
}

@HandlesQuery(ListFailedEmails)
export class ListFailedEmailsHandler implements IQueryHandler<ListFailedEmails> {
  constructor(private readonly engine: ProjectionEngine) {}

  execute({ firmId, filter }: ListFailedEmails): Promise<FailedEmailsPage> {
    return failedEmailsOfFirm(this.engine.reader('failed-emails'), firmId, filter);
  }
}

@HandlesCommand(RetryEmail)
export class RetryEmailHandler implements ICommandHandler<RetryEmail> {
  constructor(private readonly commands: CommandHandler) {}

  async execute({ firmId, messageId, envelope }: RetryEmail) {
    const stream = streams.notifications(firmId);
    const { state } = await this.commands.load(stream, notificationsDecider);
    const userId = state.failed.get(messageId)?.recipient.userId;
    let recipient: Recipient | null = null;
    if (userId !== undefined) {
      const { state: user } = await this.commands.load(streams.user(firmId, userId), userDecider);
      recipient = user.status === 'active' ? recipientOf(user, userId) : null;
    }
    // The decider checks again on the stream as it is when it appends (a retry racing this one).
    const outcome = await this.commands.handle(
      stream,
      notificationsDecider,
      { type: 'RetryEmail', messageId, recipient },
      envelope,
    );
    const queued = outcome.state.pending.get(retryMessageId(messageId));
    return {
      position: String(outcome.position),
      messageId: retryMessageId(messageId),
      retryOf: messageId,
      recipient: queued?.recipient ?? recipient,
    };
  }
}
