import type { UserRole } from '../directory/user.decider';
import { assertNever, Decider, DecisionContext, eventTypesOf } from '../shared/decider';
import { deterministicId } from '../shared/deterministic-id';
import { conflict, notFound } from '../shared/domain-error';
import type { LicenseUsageFigures, Threshold } from '../subscription/subscription.decider';

/*
 * A firm's outgoing email, one stream per firm (`notifications-{firmId}`):
 * what was queued for whom and why, and what was handed to the mail server.
 * The notification policy queues (src/notifications/notification-policy.ts),
 * the mailer records what it sent or what the mail server refused for good
 * (src/notifications/mailer.ts), and an operator may queue a refused email
 * again once the address is fixed. Every email has a Message-ID fixed when it
 * is queued, so a message sent again after a crash is recognisably the same
 * message.
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
  /** Set on an email an operator queued again: the Message-ID of the one the server refused. */
  retryOf?: string;
}

export type MailTransportKind = 'smtp' | 'outbox';

export type NotificationCommand =
  /** Queues the emails not queued before (by message id). An invitation goes to a user not invited since the last re-arm. */
  | { type: 'QueueEmails'; emails: readonly QueuedEmail[] }
  /** These users are no longer MFA-enabled: their next enablement invites them again. */
  | { type: 'RearmInvitations'; userIds: readonly string[]; cause: NotificationCause }
  /** The mail server (or the outbox) took these messages. */
  | { type: 'RecordEmailsSent'; sends: readonly SentEmail[] }
  /** The mail server refused these messages for good (a 5xx reply): they are not retried. */
  | { type: 'RecordEmailsFailed'; failures: readonly EmailFailure[] }
  /**
   * An operator queues a refused email again, to the recipient as the user's
   * stream says now (`null`: the user is not registered or not active).
   */
  | { type: 'RetryEmail'; messageId: string; recipient: Recipient | null };

export interface SentEmail {
  messageId: string;
  transport: MailTransportKind;
  /** The server's answer (`250 ...`) or the outbox file's name. */
  response: string;
}

export interface EmailFailure {
  messageId: string;
  transport: MailTransportKind;
  /** The SMTP reply code, 500-599. */
  responseCode: number;
  /** The server's reply text (it may name the address). */
  response: string;
  /** Attempts made, this one included. */
  attempts: number;
}

/** The Message-ID of the email an operator queues again in place of a refused one. */
export const retryMessageId = (failedMessageId: string) =>
  deterministicId('retry', failedMessageId);

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
    }
  | {
      type: 'EmailFailed';
      data: EmailFailure & {
        notification: NotificationKind;
        recipient: Recipient;
        failedAt: string;
      };
    };

/** A queued email as the stream keeps it until it is sent or refused. */
export type PendingEmail = QueuedEmail & { queuedAt: string };

export interface NotificationState {
  /** Every message id ever queued in this stream: queuing is idempotent. */
  queued: ReadonlySet<string>;
  /** Queued, not yet recorded as sent or failed. */
  pending: ReadonlyMap<string, PendingEmail>;
  /** Refused for good and not queued again since, with the refusal. */
  failed: ReadonlyMap<string, PendingEmail & { failure: EmailFailure }>;
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
    EmailFailed: true,
  }),

  initialState: () => ({
    queued: new Set(),
    pending: new Map(),
    failed: new Map(),
    invited: new Map(),
  }),

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
          const email = state.pending.get(messageId);
          if (email === undefined || recorded.has(messageId)) continue;
          recorded.add(messageId);
          events.push({
            type: 'EmailSent',
            data: { messageId, userId: email.recipient.userId, transport, response, sentAt: now },
          });
        }
        return events;
      }

      case 'RecordEmailsFailed': {
        const events: NotificationEvent[] = [];
        const recorded = new Set<string>();
        for (const failure of command.failures) {
          const email = state.pending.get(failure.messageId);
          // Sent meanwhile (another instance), or recorded already: nothing to record.
          if (email === undefined || recorded.has(failure.messageId)) continue;
          recorded.add(failure.messageId);
          events.push({
            type: 'EmailFailed',
            data: {
              messageId: failure.messageId,
              notification: email.notification,
              recipient: email.recipient,
              transport: failure.transport,
              responseCode: failure.responseCode,
              response: failure.response,
              attempts: failure.attempts,
              failedAt: now,
            },
          });
        }
        return events;
      }

      case 'RetryEmail': {
        if (!state.queued.has(command.messageId)) {
          throw notFound(
            'email-not-found',
            `No email ${command.messageId} was queued for this firm.`,
          );
        }
        const failed = state.failed.get(command.messageId);
        if (!failed) {
          throw conflict(
            'email-not-failed',
            'Only an email the mail server refused, and not queued again since, can be retried.',
          );
        }
        if (command.recipient === null) {
          throw conflict(
            'recipient-not-active',
            'The recipient is no longer an active user of the firm: the email is not queued again.',
          );
        }
        const { failure: _failure, queuedAt: _queuedAt, ...email } = failed;
        return [
          {
            type: 'EmailQueued',
            data: {
              ...email,
              messageId: retryMessageId(command.messageId),
              recipient: command.recipient,
              retryOf: command.messageId,
              queuedAt: now,
            },
          },
        ];
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
    const failed = new Map(state.failed);
    const invited = new Map(state.invited);
    for (const event of events) {
      switch (event.type) {
        case 'EmailQueued':
          queued.add(event.data.messageId);
          pending.set(event.data.messageId, event.data);
          if (event.data.notification === 'enrollment-invitation') {
            invited.set(event.data.recipient.userId, event.data.messageId);
          }
          if (event.data.retryOf !== undefined) failed.delete(event.data.retryOf);
          break;
        case 'EmailSent':
          pending.delete(event.data.messageId);
          break;
        case 'EmailFailed': {
          const email = pending.get(event.data.messageId);
          pending.delete(event.data.messageId);
          if (email) {
            const { messageId, transport, responseCode, response, attempts } = event.data;
            failed.set(messageId, {
              ...email,
              failure: { messageId, transport, responseCode, response, attempts },
            });
          }
          break;
        }
        case 'EnrollmentInvitationsRearmed':
          for (const userId of event.data.userIds) invited.delete(userId);
          break;
        default:
          assertNever(event);
      }
    }
    return { queued, pending, failed, invited };
  },
};
