import { failedEmailsProjection } from '../../projections/failed-emails.projection';
import type { NotificationEvent, Recipient } from '../../src/notifications/notifications.decider';
import { T } from './events';
import { event, projectionSpec, recorded } from './projection-spec';

/*
 * Emails the mail server refused for good (DESIGN §5), for operators: one
 * document per refused email until an operator queues it again, and their
 * count across firms.
 */
const spec = projectionSpec(failedEmailsProjection);
const notifications = (e: NotificationEvent, firmId = 'acme') => recorded(e, firmId);

const recipient: Recipient = {
  userId: 'u-1',
  name: 'Ann Smith',
  email: 'ann@example.com',
  role: 'case-manager',
};
const failed = (messageId: string, firmId = 'acme') =>
  notifications(
    {
      type: 'EmailFailed',
      data: {
        messageId,
        transport: 'smtp',
        responseCode: 550,
        response: '550 mailbox unavailable',
        attempts: 1,
        notification: 'enrollment-invitation',
        recipient,
        failedAt: T,
      },
    },
    firmId,
  );
const queued = (messageId: string, retryOf?: string) =>
  notifications({
    type: 'EmailQueued',
    data: {
      messageId,
      notification: 'enrollment-invitation',
      recipient,
      usage: null,
      cause: {
        eventId: 'e-1',
        eventType: 'UserRegistered',
        streamId: 'user-acme/u-1',
        position: '7',
      },
      queuedAt: T,
      ...(retryOf ? { retryOf } : {}),
    },
  });
const failure = (messageId: string, firmId = 'acme') => ({
  [`${firmId}/${messageId}`]: {
    firmId,
    messageId,
    notification: 'enrollment-invitation',
    recipient,
    transport: 'smtp',
    responseCode: 550,
    response: '550 mailbox unavailable',
    attempts: 1,
    failedAt: T,
  },
});

describe('Failed emails projection', () => {
  it('lists each refused email once, and counts them across firms', () => {
    spec
      .given([failed('m-1')])
      .when(failed('m-2', 'globex'), failed('m-1'))
      .then({
        failed: { ...failure('m-1'), ...failure('m-2', 'globex') },
        totals: { 'all-firms': { failed: 2 } },
      });
  });

  it('takes an email off the list once an operator queues it again', () => {
    spec
      .given([failed('m-1'), failed('m-2')])
      .when(queued('m-3', 'm-1'))
      .then({ failed: failure('m-2'), totals: { 'all-firms': { failed: 1 } } });
    spec
      .given([failed('m-1')])
      .when(queued('m-4'), queued('m-5', 'm-9'))
      .thenNothingChanges();
  });

  it('is not given an event of a type it does not handle, which would change nothing', () => {
    spec.passesOver(event('EmailBounced', { messageId: 'm-1' }), [failed('m-1')]);
  });
});
