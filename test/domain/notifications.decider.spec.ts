import fc from 'fast-check';
import {
  NotificationCause,
  NotificationCommand,
  notificationsDecider,
  NotificationEvent,
  QueuedEmail,
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

  it('folding a batch at once equals folding event by event', () => {
    const users = ['ann', 'bob', 'cid'];
    const anyEvent: fc.Arbitrary<NotificationEvent> = fc.oneof(
      fc
        .tuple(fc.nat(5), fc.constantFrom(...users), fc.boolean())
        .map(([n, user, invite]) =>
          queued(invite ? invitation(`m-${n}`, user) : usageEmail(`m-${n}`, user)),
        ),
      fc.tuple(fc.nat(5), fc.constantFrom(...users)).map(([n, user]) => sent(`m-${n}`, user)),
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
