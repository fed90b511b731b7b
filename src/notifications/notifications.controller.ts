import { Body, Controller, Get, HttpCode, Param, Post, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiPropertyOptional, ApiTags } from '@nestjs/swagger';
import { IsOptional, IsString, Matches, MaxLength } from 'class-validator';
import { failedEmailsOfFirm } from '../../projections/failed-emails.projection';
import { CommandEnvelope, CommandHandler } from '../command-handling/command-handler';
import { userDecider } from '../directory/user.decider';
import { Roles } from '../http/auth';
import { Envelope } from '../http/command-envelope';
import { ReadsProjections } from '../http/min-position';
import { validationProblem } from '../http/problem';
import { IdPipe, ReadQuery } from '../http/validation';
import { ProjectionEngine } from '../projection-engine/projection-engine';
import { isValidId, streams } from '../shared/ids';
import { recipientOf } from './notification-policy';
import { notificationsDecider, retryMessageId } from './notifications.decider';

const DEFAULT_PAGE = 50;
const MAX_PAGE = 200;

export class FailedEmailsQuery extends ReadQuery {
  @ApiPropertyOptional({ description: `Page size, 1-${MAX_PAGE} (default ${DEFAULT_PAGE}).` })
  @IsOptional()
  @Matches(/^\d{1,6}$/, { message: `must be a whole number from 1 to ${MAX_PAGE}` })
  limit?: string;

  @ApiPropertyOptional({ description: 'The `nextCursor` of the previous page.' })
  @IsOptional()
  @IsString()
  @MaxLength(1024)
  cursor?: string;
}

export class RetryEmailBody {}

/**
 * Operators' view of a firm's outgoing email (DESIGN §5: a permanent refusal
 * is recorded as failed, not retried for ever): which emails the mail server
 * refused for good, and queuing one again once the address is fixed.
 */
@ApiTags('Notifications (operators)')
@ApiBearerAuth()
@Controller('v1/firms/:firmId/mfa/notifications')
export class NotificationsController {
  constructor(
    private readonly engine: ProjectionEngine,
    private readonly commands: CommandHandler,
  ) {}

  @Get('failed')
  @Roles('operator')
  @ReadsProjections('failed-emails')
  @ApiOperation({
    summary: 'Emails the mail server refused for good',
    description:
      "The firm's emails recorded as failed (an `EmailFailed` event: a 5xx reply to the recipient " +
      'or the message) and not queued again since, oldest first: `{ items: [{ messageId, ' +
      'notification, recipient: { userId, name, email, role }, transport, responseCode, response, attempts, ' +
      "failedAt }], nextCursor }`. `response` is the server's reply text and may name the address. " +
      "A failed email is not retried by itself: fix the address (the host's `PUT .../users/{userId}`), " +
      'then queue it again with `POST .../notifications/{messageId}/retry`.',
  })
  async failed(@Param('firmId', IdPipe) firmId: string, @Query() query: FailedEmailsQuery) {
    const page = await failedEmailsOfFirm(this.engine.reader('failed-emails'), firmId, {
      limit: pageSize(query.limit),
      after: decodeCursor(query.cursor),
    });
    return {
      items: page.items.map(({ firmId: _firmId, ...item }) => item),
      nextCursor: page.next ? encodeCursor(page.next) : null,
    };
  }

  @Post(':messageId/retry')
  @HttpCode(200)
  @Roles('operator')
  @ApiOperation({
    summary: 'Queue a failed email again, to the address the user has now',
    description:
      'Queues the email again (an `EmailQueued` with a new Message-ID and `retryOf`), addressed to ' +
      "the recipient as the user's stream says now; the mailer sends it once. Answers " +
      '`{ position, messageId, retryOf, recipient }`. 404 `email-not-found` for a message id this ' +
      'firm never queued; 409 `email-not-failed` when the email is pending, sent or already queued ' +
      'again; 409 `recipient-not-active` when the user is no longer active.',
  })
  async retry(
    @Param('firmId', IdPipe) firmId: string,
    @Param('messageId', IdPipe) messageId: string,
    @Body() _body: RetryEmailBody,
    @Envelope() envelope: CommandEnvelope,
  ) {
    const stream = streams.notifications(firmId);
    const { state } = await this.commands.load(stream, notificationsDecider);
    const userId = state.failed.get(messageId)?.recipient.userId;
    let recipient = null;
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

function pageSize(limit: string | undefined): number {
  if (limit === undefined) return DEFAULT_PAGE;
  const value = Number(limit);
  if (value < 1 || value > MAX_PAGE) {
    throw validationProblem([
      { field: 'limit', message: `must be a whole number from 1 to ${MAX_PAGE}` },
    ]);
  }
  return value;
}

/** Opaque to clients: the (failedAt, messageId) of the last item of the previous page. */
function encodeCursor(after: [string, string]): string {
  return Buffer.from(JSON.stringify(after)).toString('base64url');
}

function decodeCursor(cursor: string | undefined): [string, string] | undefined {
  if (cursor === undefined) return undefined;
  let decoded: unknown;
  try {
    decoded = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    decoded = undefined;
  }
  if (
    !Array.isArray(decoded) ||
    decoded.length !== 2 ||
    typeof decoded[0] !== 'string' ||
    !isValidId(decoded[1]) ||
    encodeCursor([decoded[0], decoded[1]]) !== cursor
  ) {
    throw validationProblem([
      { field: 'cursor', message: 'must be a nextCursor this endpoint returned' },
    ]);
  }
  return [decoded[0], decoded[1]];
}
