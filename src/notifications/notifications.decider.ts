import type { UserRole } from '../directory/user.decider';
import { assertNever, Decider, DecisionContext, eventTypesOf } from '../shared/decider';
import type { LicenseUsageFigures, Threshold } from '../subscription/subscription.decider';

/*
 * A firm's outgoing email, one stream per firm (`notifications-{firmId}`):
 * what was queued for whom and why, and what was handed to the mail server.
 * The notification policy queues (src/notifications/notification-policy.ts),
 * the mailer records what it sent (src/notifications/mailer.ts). Every email
 * has a Message-ID fixed when it is queued, so a message sent again after a
 * crash is recognisably the same message.
 */

export type NotificationKind = 'license-usage-80' | 'license-usage-100' | 'enrollment-invitation';

export const licenseUsageKind = (threshold: Threshold): NotificationKind =>
  threshold === 80 ? 'license-usage-80' : 'license-usage-100';

export interface Recipient {
  userId: string;
  name: string;
  email: string;
  role: UserRole;
}

/** The event that made the policy queue an email. */
export interface NotificationCause {
  eventId: string;
  eventType: string;
  streamId: string;
  position: string;
}

export interface QueuedEmail {
  /** UUID-shaped, derived from the notification and the recipient (see notification-policy.ts). */
  messageId: string;
  notification: NotificationKind;
  recipient: Recipient;
  /** License-usage emails: the figures right after the threshold was reached. */
  usage: (LicenseUsageFigures & { threshold: Threshold }) | null;
  cause: NotificationCause;
}

export type MailTransportKind = 'smtp' | 'outbox';

export type NotificationCommand =
  /** Queues the emails not queued before (by message id). An invitation goes to a user not invited since the last re-arm. */
  | { type: 'QueueEmails'; emails: readonly QueuedEmail[] }
  /** These users are no longer MFA-enabled: their next enablement invites them again. */
  | { type: 'RearmInvitations'; userIds: readonly string[]; cause: NotificationCause }
  /** The mail server (or the outbox) took these messages. */
  | { type: 'RecordEmailsSent'; sends: readonly SentEmail[] };

export interface SentEmail {
  messageId: string;
  transport: MailTransportKind;
  /** The server's answer (`250 ...`) or the outbox file's name. */
  response: string;
}

export type NotificationEvent =
  | { type: 'EmailQueued'; data: QueuedEmail & { queuedAt: string } }
  | {
      type: 'EmailSent';
      data: {
        messageId: string;
        userId: string;
        transport: MailTransportKind;
        /** The server's answer (`250 ...`) or the outbox file's name. */
        response: string;
        sentAt: string;
      };
    }
  | {
      type: 'EnrollmentInvitationsRearmed';
      data: { userIds: string[]; cause: NotificationCause; rearmedAt: string };
    };

export interface NotificationState {
  /** Every message id ever queued in this stream: queuing is idempotent. */
  queued: ReadonlySet<string>;
  /** Queued, not yet recorded as sent, with the recipient. */
  pending: ReadonlyMap<string, string>;
  /** Users invited to enroll since they last became MFA-enabled, with the invitation's message id. */
  invited: ReadonlyMap<string, string>;
}

export const notificationsDecider: Decider<
  NotificationCommand,
  NotificationEvent,
  NotificationState,
  DecisionContext
> = {
  eventTypes: eventTypesOf<NotificationEvent['type']>({
    EmailQueued: true,
    EmailSent: true,
    EnrollmentInvitationsRearmed: true,
  }),

  initialState: () => ({ queued: new Set(), pending: new Map(), invited: new Map() }),

  decide(command, state, { now }) {
    switch (command.type) {
      case 'QueueEmails': {
        const events: NotificationEvent[] = [];
        const invitedNow = new Set<string>();
        for (const email of command.emails) {
          if (state.queued.has(email.messageId)) continue;
          if (email.notification === 'enrollment-invitation') {
            const userId = email.recipient.userId;
            if (state.invited.has(userId) || invitedNow.has(userId)) continue;
            invitedNow.add(userId);
          }
          events.push({ type: 'EmailQueued', data: { ...email, queuedAt: now } });
        }
        return events;
      }

      case 'RearmInvitations': {
        const userIds = [...new Set(command.userIds)].filter((id) => state.invited.has(id));
        if (userIds.length === 0) return [];
        return [
          {
            type: 'EnrollmentInvitationsRearmed',
            data: { userIds, cause: command.cause, rearmedAt: now },
          },
        ];
      }

      case 'RecordEmailsSent': {
        const events: NotificationEvent[] = [];
        const recorded = new Set<string>();
        for (const { messageId, transport, response } of command.sends) {
          const userId = state.pending.get(messageId);
          if (userId === undefined || recorded.has(messageId)) continue;
          recorded.add(messageId);
          events.push({
            type: 'EmailSent',
            data: { messageId, userId, transport, response, sentAt: now },
          });
        }
        return events;
      }

      default:
        return assertNever(command);
    }
  },

  evolve: (state, event) => notificationsDecider.evolveMany!(state, [event]),

  // Copies the collections once per batch: a firm's stream holds one event per email.
  evolveMany(state, events) {
    const queued = new Set(state.queued);
    const pending = new Map(state.pending);
    const invited = new Map(state.invited);
    for (const event of events) {
      switch (event.type) {
        case 'EmailQueued':
          queued.add(event.data.messageId);
          pending.set(event.data.messageId, event.data.recipient.userId);
          if (event.data.notification === 'enrollment-invitation') {
            invited.set(event.data.recipient.userId, event.data.messageId);
          }
          break;
        case 'EmailSent':
          pending.delete(event.data.messageId);
          break;
        case 'EnrollmentInvitationsRearmed':
          for (const userId of event.data.userIds) invited.delete(userId);
          break;
        default:
          assertNever(event);
      }
    }
    return { queued, pending, invited };
  },
};
