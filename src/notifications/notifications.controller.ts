import { Body, Controller, Get, HttpCode, Param, Post, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { CommandBus, QueryBus } from '@nestjs/cqrs';
import type { CommandEnvelope } from '../command-handling/command-handler';
import { Roles } from '../http/auth';
import { decodeCursor, encodeCursor, PageQuery, pageSize } from '../http/paging';
import { Envelope } from '../http/command-envelope';
import { ReadsProjections } from '../projection-engine/min-position';
import { IdPipe } from '../http/validation';
import { ListFailedEmails, RetryEmail } from './notifications.commands';
import { USER_ROLES } from '../shared/roles';
import {
  apiSchema,
  commandAnswer,
  COUNT,
  ID,
  ISO_TIME,
  objectSchema,
  pageOf,
} from '../http/api-schemas';

const RECIPIENT = objectSchema({
  userId: ID,
  name: { type: 'string' },
  email: { type: 'string' },
  role: { type: 'string', enum: [...USER_ROLES] },
});
const RECIPIENT_EXAMPLE = {
  userId: 'u-7',
  name: 'Grace Hopper',
  email: 'grace@firm.example',
  role: 'case-manager',
};
const NOTIFICATION = {
  type: 'string',
  enum: ['license-usage-80', 'license-usage-100', 'enrollment-invitation'],
};
const FAILED_EMAIL_EXAMPLE = {
  messageId: 'b8e3c7d0-5c1a-5e0e-9d51-2f1f0c8e7a11',
  notification: 'license-usage-80',
  recipient: RECIPIENT_EXAMPLE,
  transport: 'smtp',
  responseCode: 550,
  response: '550 5.1.1 No such user',
  attempts: 1,
  failedAt: '2026-03-02T09:35:00.000Z',
};

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
    private readonly commandBus: CommandBus,
    private readonly queryBus: QueryBus,
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
  @ApiOkResponse({
    description: 'A page of failed emails, oldest first.',
    schema: apiSchema(
      'FailedEmailsPage',
      pageOf(
        objectSchema({
          messageId: ID,
          notification: NOTIFICATION,
          recipient: RECIPIENT,
          transport: { type: 'string', enum: ['smtp', 'outbox'] },
          responseCode: { type: 'integer', description: "The mail server's reply code (5xx)." },
          response: { type: 'string', description: "The server's reply text." },
          attempts: COUNT,
          failedAt: ISO_TIME,
        }),
        [FAILED_EMAIL_EXAMPLE],
      ),
    ),
  })
  async failed(@Param('firmId', IdPipe) firmId: string, @Query() query: PageQuery) {
    const page = await this.queryBus.execute(
      new ListFailedEmails(firmId, {
        limit: pageSize(query.limit),
        after: decodeCursor(query.cursor),
      }),
    );
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
  @ApiOkResponse({
    description: 'The email is queued again.',
    schema: apiSchema(
      'EmailRequeued',
      commandAnswer(
        {
          messageId: { ...ID, description: 'The new Message-ID.' },
          retryOf: { ...ID, description: 'The failed email this one retries.' },
          recipient: RECIPIENT,
        },
        {
          example: {
            position: '31',
            messageId: '0c6f2a4e-8d3b-5b7f-a1e2-4c9d8e7f6a5b',
            retryOf: 'b8e3c7d0-5c1a-5e0e-9d51-2f1f0c8e7a11',
            recipient: RECIPIENT_EXAMPLE,
          },
        },
      ),
    ),
  })
  retry(
    @Param('firmId', IdPipe) firmId: string,
    @Param('messageId', IdPipe) messageId: string,
    @Body() _body: RetryEmailBody,
    @Envelope() envelope: CommandEnvelope,
  ) {
    return this.commandBus.execute(new RetryEmail(firmId, messageId, envelope));
  }
}
