import { Injectable } from '@nestjs/common';
import { ModuleRef } from '@nestjs/core';
import {
  billingRecipients,
  mfaAppliesTo,
  PersonDoc,
  peopleWithRole,
  person,
  scopeOf,
} from '../../projections/mail-directory.projection';
import type { ScopeDoc } from '../../projections/mfa-scope';
import type { ReadModelReader } from '../../projections/projection';
import { CommandEnvelope, CommandHandler } from '../command-handling/command-handler';
import type { UserRole } from '../directory/user.decider';
import type { RecordedEvent } from '../event-store/event-store.port';
import type { ProcessManager } from '../projection-engine/process-manager';
import { ProjectionEngine } from '../projection-engine/projection-engine';
import { deterministicId } from '../shared/deterministic-id';
import { streams } from '../shared/ids';
import type { LicenseUsageFigures, Threshold } from '../subscription/subscription.decider';
import {
  licenseUsageKind,
  NotificationCause,
  notificationsDecider,
  QueuedEmail,
  Recipient,
} from './notifications.decider';

const STAFF: readonly UserRole[] = ['case-manager', 'vendor-case-manager'];
const PAGE = 500;
const DIRECTORY = 'mail-directory';
/** How long a decision waits for the directory to reach its event before it is retried. */
const DIRECTORY_WAIT_MS = 10_000;

/** A user's events after which MFA may start or stop applying to the user. */
const USER_EVENTS: ReadonlySet<string> = new Set([
  'UserRegistered',
  'UserProfileUpdated',
  'UserReactivated',
]);

/** Firm-wide events after which MFA may start or stop applying to many staff users at once. */
const FIRM_EVENTS: Readonly<Record<string, readonly UserRole[]>> = {
  CaseManagersEnablementChanged: ['case-manager'],
  VendorCaseManagersEnablementChanged: ['vendor-case-manager'],
  SubscriptionActivated: STAFF,
  SubscriptionCancelled: STAFF,
};

/** Whether the event itself stops MFA for those it concerns, whatever happened since. */
const stopsMfa = (event: RecordedEvent) =>
  event.type === 'UserDeactivated' ||
  event.type === 'SubscriptionCancelled' ||
  (event.type.endsWith('EnablementChanged') && event.data.enabled === false);

/**
 * Decides who gets which email (DESIGN §5) and queues it in the firm's
 * notifications stream; the mailer sends what is queued. A process manager:
 * it follows the log from its checkpoint and queues idempotently (the stream
 * knows every message id it queued), so an event handled again after a crash
 * queues nothing twice.
 *
 * - License usage: every LicenseUsageThresholdReached (recorded by the
 *   subscription in the append that reached the threshold) queues one email to
 *   each active firm admin and each active case manager flagged as billing
 *   contact.
 * - Enrollment invitation: when MFA starts applying to a case manager or a
 *   vendor case manager who has not enrolled (a switch turned on, a
 *   subscription activated, a user registered, reactivated or given a staff
 *   role while the switch is on), that user is invited once. When MFA stops
 *   applying to an invited user, the invitation is re-armed, so turning a
 *   switch off and on again invites again those still not enrolled.
 *
 * Recipients and enablement are read from the mail-directory read model once it
 * has processed the event (it may be further on): an email goes to who is a
 * recipient when the policy handles the event, so a user deactivated in
 * between is not written to. See docs/notifications.md.
 */
@Injectable()
export class NotificationPolicy implements ProcessManager {
  readonly name = 'notification-policy';
  readonly handles = [
    'LicenseUsageThresholdReached',
    ...USER_EVENTS,
    'UserDeactivated',
    ...Object.keys(FIRM_EVENTS),
  ];
  private engine: ProjectionEngine | undefined;

  constructor(
    private readonly commands: CommandHandler,
    private readonly moduleRef: ModuleRef,
  ) {}

  async handle(event: RecordedEvent): Promise<void> {
    const reader = await this.directoryAt(event.position);
    const { firmId } = event.metadata;
    if (event.type === 'LicenseUsageThresholdReached') {
      await this.queueLicenseUsage(reader, firmId, event);
    } else if (USER_EVENTS.has(event.type) || event.type === 'UserDeactivated') {
      const userId = event.data.userId;
      if (typeof userId !== 'string') return;
      const who = await person(reader, firmId, userId);
      if (who) await this.invite(firmId, [who], await scopeOf(reader, firmId), event, 'user');
    } else {
      const roles = FIRM_EVENTS[event.type] ?? [];
      const scope = await scopeOf(reader, firmId);
      for (const role of roles) {
        let page = 0;
        let last: PersonDoc | undefined;
        for (;;) {
          const people = await peopleWithRole(reader, firmId, role, last, PAGE);
          if (people.length === 0) break;
          await this.invite(firmId, people, scope, event, `${role}/${page++}`);
          last = people[people.length - 1];
          if (people.length < PAGE) break;
        }
      }
    }
  }

  private async queueLicenseUsage(reader: ReadModelReader, firmId: string, event: RecordedEvent) {
    const usage = event.data as unknown as LicenseUsageFigures & { threshold: Threshold };
    const notification = licenseUsageKind(usage.threshold);
    const cause = causeOf(event);
    let page = 0;
    let last: PersonDoc | undefined;
    for (;;) {
      const recipients = await billingRecipients(reader, firmId, last, PAGE);
      if (recipients.length === 0) break;
      const emails: QueuedEmail[] = recipients.map((who) => ({
        messageId: deterministicId(notification, firmId, event.metadata.eventId, who.userId),
        notification,
        recipient: recipientOf(who),
        usage: {
          threshold: usage.threshold,
          licenseCount: usage.licenseCount,
          seatsInUse: usage.seatsInUse,
          unutilized: usage.unutilized,
          usagePercent: usage.usagePercent,
        },
        cause,
      }));
      await this.commands.handle(
        streams.notifications(firmId),
        notificationsDecider,
        { type: 'QueueEmails', emails },
        this.envelope(event, `queue/${page++}`),
      );
      last = recipients[recipients.length - 1];
      if (recipients.length < PAGE) break;
    }
  }

  /**
   * Invites those of `people` whom MFA applies to now and who have not enrolled;
   * re-arms those it does not apply to. An event that stops MFA (a switch turned
   * off, a cancellation, a deactivation) re-arms all it concerns even when the
   * directory has already moved on: a quick off-and-on then still invites again.
   */
  private async invite(
    firmId: string,
    people: readonly PersonDoc[],
    scope: ScopeDoc,
    event: RecordedEvent,
    part: string,
  ): Promise<void> {
    const cause = causeOf(event);
    const invitations: QueuedEmail[] = [];
    const rearm: string[] = [];
    const stops = stopsMfa(event);
    for (const who of people) {
      const applies = !stops && STAFF.includes(who.role) && mfaAppliesTo(scope, who);
      if (!applies) rearm.push(who.userId);
      else if (!who.enrolled) {
        invitations.push({
          messageId: deterministicId(
            'enrollment-invitation',
            firmId,
            event.metadata.eventId,
            who.userId,
          ),
          notification: 'enrollment-invitation',
          recipient: recipientOf(who),
          usage: null,
          cause,
        });
      }
    }
    const stream = streams.notifications(firmId);
    if (rearm.length > 0) {
      await this.commands.handle(
        stream,
        notificationsDecider,
        { type: 'RearmInvitations', userIds: rearm, cause },
        this.envelope(event, `rearm/${part}`),
      );
    }
    if (invitations.length > 0) {
      await this.commands.handle(
        stream,
        notificationsDecider,
        { type: 'QueueEmails', emails: invitations },
        this.envelope(event, `invite/${part}`),
      );
    }
  }

  /** The directory once it has processed `position`; a directory that lags makes the runner retry. */
  private async directoryAt(position: bigint): Promise<ReadModelReader> {
    // Resolved late: the engine is built with the process managers, this one among them.
    const engine = this.engine ?? this.moduleRef.get(ProjectionEngine, { strict: false });
    if (!engine) throw new Error('The projection engine is not running');
    this.engine = engine;
    if (!(await engine.waitFor(position, [DIRECTORY], DIRECTORY_WAIT_MS))) {
      throw new Error(`the ${DIRECTORY} read model has not reached position ${position} yet`);
    }
    return engine.reader(DIRECTORY);
  }

  private envelope(event: RecordedEvent, part: string): CommandEnvelope {
    return {
      commandId: deterministicId(this.name, event.metadata.eventId, part),
      firmId: event.metadata.firmId,
      actor: { id: this.name, role: 'system' },
      correlationId: event.metadata.correlationId,
      causationId: event.metadata.eventId,
    };
  }
}

function causeOf(event: RecordedEvent): NotificationCause {
  return {
    eventId: event.metadata.eventId,
    eventType: event.type,
    streamId: event.streamId,
    position: String(event.position),
  };
}

function recipientOf(who: PersonDoc): Recipient {
  return { userId: who.userId, name: who.name, email: who.email, role: who.role };
}
