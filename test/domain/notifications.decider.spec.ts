import fc from 'fast-check';
import {
  NotificationCause,
  NotificationCommand,
  notificationsDecider,
  NotificationEvent,
  QueuedEmail,
  retryMessageId,
} from '../../src/notifications/notifications.decider';
import { fold } from '../../src/shared/decider';
import { deciderSpec } from '../support/decider-spec';

const now = '2026-03-02T10:00:00.000Z';
const spec = deciderSpec(notificationsDecider, { now });

const cause = (eventId: string): NotificationCause => ({
  eventId,
  eventType: 'LicenseUsageThresholdReached',
  streamId: 'subscription-acme',
  position: '42',
});

const usageEmail = (messageId: string, userId: string): QueuedEmail => ({
  messageId,
  notification: 'license-usage-80',
  recipient: { userId, name: userId, email: `${userId}@firm.example`, role: 'case-manager' },
  usage: { threshold: 80, licenseCount: 10, seatsInUse: 8, unutilized: 2, usagePercent: 80 },
  cause: cause('e-80'),
});
const invitation = (messageId: string, userId: string): QueuedEmail => ({
  messageId,
  notification: 'enrollment-invitation',
  recipient: { userId, name: userId, email: `${userId}@firm.example`, role: 'case-manager' },
  usage: null,
  cause: { ...cause(`e-${messageId}`), eventType: 'UserRegistered' },
});

const queue = (...emails: QueuedEmail[]): NotificationCommand => ({ type: 'QueueEmails', emails });
const queued = (email: QueuedEmail): NotificationEvent => ({
  type: 'EmailQueued',
  data: { ...email, queuedAt: now },
});
const recordSent = (...messageIds: string[]): NotificationCommand => ({
  type: 'RecordEmailsSent',
  sends: messageIds.map((messageId) => ({ messageId, transport: 'smtp', response: '250 OK' })),
});
const sent = (messageId: string, userId: string): NotificationEvent => ({
  type: 'EmailSent',
  data: { messageId, userId, transport: 'smtp', response: '250 OK', sentAt: now },
});
const refusal = (messageId: string) => ({
  messageId,
  transport: 'smtp' as const,
  responseCode: 550,
  response: '5.1.1 <x@old.example>: Recipient address rejected',
  attempts: 1,
});
const recordFailed = (...messageIds: string[]): NotificationCommand => ({
  type: 'RecordEmailsFailed',
  failures: messageIds.map(refusal),
});
const failedEvent = (email: QueuedEmail): NotificationEvent => ({
  type: 'EmailFailed',
  data: {
    ...refusal(email.messageId),
    notification: email.notification,
    recipient: email.recipient,
    failedAt: now,
  },
});
const moved = {
  userId: 'ann',
  name: 'Ann',
  email: 'ann@new.example',
  role: 'case-manager' as const,
};
const retry = (messageId: string, recipient: QueuedEmail['recipient'] | null = moved) =>
  ({ type: 'RetryEmail', messageId, recipient }) as NotificationCommand;
const rearm = (...userIds: string[]): NotificationCommand => ({
  type: 'RearmInvitations',
  userIds,
  cause: cause('e-off'),
});
const rearmed = (...userIds: string[]): NotificationEvent => ({
  type: 'EnrollmentInvitationsRearmed',
  data: { userIds, cause: cause('e-off'), rearmedAt: now },
});

describe("A firm's outgoing email (notifications stream)", () => {
  describe('queuing is idempotent by Message-ID', () => {
    it('queues one event per new email', () => {
      const a = usageEmail('m-a', 'ann');
      const b = usageEmail('m-b', 'bob');
      spec
        .given([])
        .when(queue(a, b))
        .then([queued(a), queued(b)]);
    });

    it('an email queued before is not queued again, sent or not (a policy handling its event twice)', () => {
      const a = usageEmail('m-a', 'ann');
      const b = usageEmail('m-b', 'bob');
      spec
        .given([queued(a)])
        .when(queue(a, b))
        .then([queued(b)]);
      spec
        .given([queued(a), sent('m-a', 'ann')])
        .when(queue(a))
        .then([]);
    });
  });

  describe('an invitation goes once per enablement', () => {
    it('a user already invited is not invited again, whatever the cause', () => {
      spec
        .given([queued(invitation('m-1', 'ann'))])
        .when(queue(invitation('m-2', 'ann')))
        .then([]);
    });

    it('two invitations to one user in one command: the first only', () => {
      const first = invitation('m-1', 'ann');
      spec
        .given([])
        .when(queue(first, invitation('m-2', 'ann')))
        .then([queued(first)]);
    });

    it('a re-arm names only users who were invited; after it, the user is invited again', () => {
      spec
        .given([queued(invitation('m-1', 'ann'))])
        .when(rearm('ann', 'bob', 'ann'))
        .then([rearmed('ann')]);
      spec.given([]).when(rearm('bob')).then([]);
      const again = invitation('m-2', 'ann');
      spec
        .given([queued(invitation('m-1', 'ann')), rearmed('ann')])
        .when(queue(again))
        .then([queued(again)]);
    });

    it('usage emails do not count as invitations', () => {
      const welcome = invitation('m-2', 'ann');
      spec
        .given([queued(usageEmail('m-1', 'ann'))])
        .when(queue(welcome))
        .then([queued(welcome)]);
    });
  });

  describe('a send is recorded once, for a queued email', () => {
    it('records the server answer for its recipient', () => {
      spec
        .given([queued(usageEmail('m-a', 'ann'))])
        .when(recordSent('m-a'))
        .then([sent('m-a', 'ann')]);
    });

    it('a second record (a retried record, another instance) changes nothing', () => {
      spec
        .given([queued(usageEmail('m-a', 'ann')), sent('m-a', 'ann')])
        .when(recordSent('m-a'))
        .then([]);
    });

    it('an email never queued is not recorded', () => {
      spec.given([]).when(recordSent('m-x')).then([]);
    });

    it('several sends are recorded in one append, each once', () => {
      spec
        .given([
          queued(usageEmail('m-a', 'ann')),
          queued(usageEmail('m-b', 'bob')),
          sent('m-a', 'ann'),
        ])
        .when(recordSent('m-a', 'm-b', 'm-b'))
        .then([sent('m-b', 'bob')]);
    });
  });

  describe('a permanent refusal is recorded once, and an operator may queue the email again (DESIGN §5)', () => {
    it('records the refusal of a pending email, with what the email was and to whom', () => {
      const a = usageEmail('m-a', 'ann');
      spec
        .given([queued(a)])
        .when(recordFailed('m-a'))
        .then([failedEvent(a)]);
    });

    it('a sent, already failed or never queued email is not recorded as failed', () => {
      const a = usageEmail('m-a', 'ann');
      spec
        .given([queued(a), sent('m-a', 'ann')])
        .when(recordFailed('m-a'))
        .then([]);
      spec
        .given([queued(a), failedEvent(a)])
        .when(recordFailed('m-a', 'm-a'))
        .then([]);
      spec.given([]).when(recordFailed('m-x')).then([]);
    });

    it('a failed email is neither sent later nor pending', () => {
      const a = usageEmail('m-a', 'ann');
      spec
        .given([queued(a), failedEvent(a)])
        .when(recordSent('m-a'))
        .then([]);
      expect(fold(notificationsDecider, [queued(a), failedEvent(a)]).pending.size).toBe(0);
    });

    it("queues it again, once, under a new Message-ID, to the recipient's current address", () => {
      const a = usageEmail('m-a', 'ann');
      const requeued: NotificationEvent = {
        type: 'EmailQueued',
        data: {
          ...a,
          messageId: retryMessageId('m-a'),
          recipient: moved,
          retryOf: 'm-a',
          queuedAt: now,
        },
      };
      spec
        .given([queued(a), failedEvent(a)])
        .when(retry('m-a'))
        .then([requeued]);
      const state = fold(notificationsDecider, [queued(a), failedEvent(a), requeued]);
      expect([...state.failed.keys()]).toEqual([]);
      expect([...state.pending.keys()]).toEqual([retryMessageId('m-a')]);
      spec
        .given([queued(a), failedEvent(a), requeued])
        .when(retry('m-a'))
        .thenThrows('email-not-failed');
    });

    it('refuses to queue again an email that is unknown, pending or sent, or whose recipient left', () => {
      const a = usageEmail('m-a', 'ann');
      spec.given([]).when(retry('m-a')).thenThrows('email-not-found', 'not-found');
      spec
        .given([queued(a)])
        .when(retry('m-a'))
        .thenThrows('email-not-failed');
      spec
        .given([queued(a), sent('m-a', 'ann')])
        .when(retry('m-a'))
        .thenThrows('email-not-failed');
      spec
        .given([queued(a), failedEvent(a)])
        .when(retry('m-a', null))
        .thenThrows('recipient-not-active');
    });

    it('an invitation queued again counts as the invitation of its user', () => {
      const invite = invitation('m-1', 'ann');
      const state = fold(notificationsDecider, [
        queued(invite),
        failedEvent(invite),
        {
          type: 'EmailQueued',
          data: { ...invite, messageId: 'm-2', retryOf: 'm-1', queuedAt: now },
        },
      ]);
      expect(state.invited.get('ann')).toBe('m-2');
    });
  });

  it('folding a batch at once equals folding event by event', () => {
    const users = ['ann', 'bob', 'cid'];
    const anyEvent: fc.Arbitrary<NotificationEvent> = fc.oneof(
      fc
        .tuple(fc.nat(5), fc.constantFrom(...users), fc.boolean())
        .map(([n, user, invite]) =>
          queued(invite ? invitation(`m-${n}`, user) : usageEmail(`m-${n}`, user)),
        ),
      fc.tuple(fc.nat(5), fc.constantFrom(...users)).map(([n, user]) => sent(`m-${n}`, user)),
      fc
        .tuple(fc.nat(5), fc.constantFrom(...users))
        .map(([n, user]) => failedEvent(usageEmail(`m-${n}`, user))),
      fc.subarray(users, { minLength: 1 }).map((ids) => rearmed(...ids)),
    );
    fc.assert(
      fc.property(fc.array(anyEvent, { maxLength: 30 }), fc.nat(30), (events, cut) => {
        const oneByOne = events.reduce(
          notificationsDecider.evolve,
          notificationsDecider.initialState(),
        );
        const batched = notificationsDecider.evolveMany!(
          fold(notificationsDecider, events.slice(0, cut)),
          events.slice(cut),
        );
        expect(batched).toEqual(oneByOne);
      }),
      { numRuns: 200 },
    );
  });
});
