import { Injectable } from '@nestjs/common';
import { ModuleRef } from '@nestjs/core';
import {
  billingCandidates,
  PersonDoc,
  peopleWithRole,
} from '../../projections/mail-directory.projection';
import type { ReadModelReader } from '../projection-engine/projection';
import { CommandEnvelope, CommandHandler } from '../command-handling/command-handler';
import {
  isBillingContact,
  RegisteredUser,
  STAFF_ROLES,
  userDecider,
  UserRole,
} from '../directory/user.decider';
import { enablementDecider } from '../enablement/enablement.decider';
import type { RecordedEvent } from '../event-store/event-store.port';
import { userIsMfaEnabled } from '../enrollment/eligibility.decision';
import type { ProcessManager } from '../projection-engine/process-manager';
import { ProcessManagerProvider } from '../projection-engine/projections.module';
import { ProjectionEngine } from '../projection-engine/projection-engine';
import { deterministicId } from '../shared/deterministic-id';
import { streams } from '../shared/ids';
import {
  LicenseUsageFigures,
  subscriptionDecider,
  Threshold,
} from '../subscription/subscription.decider';
import {
  licenseUsageKind,
  NotificationCause,
  notificationsDecider,
  QueuedEmail,
  Recipient,
} from './notifications.decider';

/** Users looked up per page of the directory, and emails queued per append. */
const PAGE = 200;
const DIRECTORY = 'mail-directory';
/** How long a decision waits for the directory to reach its event before it is retried. */
const DIRECTORY_WAIT_MS = 10_000;

/** A user's events after which MFA may start or stop applying to the user. */
const USER_EVENTS: ReadonlySet<string> = new Set([
  'UserRegistered',
  'UserProfileUpdated',
  'UserReactivated',
  'UserDeactivated',
]);

/** Firm-wide events after which MFA may start or stop applying to many staff users at once. */
const FIRM_EVENTS: Readonly<Record<string, readonly UserRole[]>> = {
  CaseManagersEnablementChanged: ['case-manager'],
  VendorCaseManagersEnablementChanged: ['vendor-case-manager'],
  SubscriptionActivated: STAFF_ROLES,
  SubscriptionCancelled: STAFF_ROLES,
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
 * knows every message id it queued and every user it invited), so an event
 * handled again after a crash queues nothing twice.
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
 * Who is active, enrolled and MFA-enabled is read from the user's, the
 * subscription's and the enablement streams when the policy decides (the
 * command handler's cached states); the mail-directory read model only lists
 * a firm's staff and possible recipients, once it has processed the event.
 * So an email goes to who qualifies when the policy handles the event: a user
 * deactivated in between is not written to. See docs/notifications.md.
 */
@Injectable()
@ProcessManagerProvider()
export class NotificationPolicy implements ProcessManager {
  readonly name = 'notification-policy';
  readonly handles = ['LicenseUsageThresholdReached', ...USER_EVENTS, ...Object.keys(FIRM_EVENTS)];
  private engine: ProjectionEngine | undefined;

  constructor(
    private readonly commands: CommandHandler,
    private readonly moduleRef: ModuleRef,
  ) {}

  async handle(event: RecordedEvent): Promise<void> {
    const { firmId } = event.metadata;
    if (event.type === 'LicenseUsageThresholdReached') {
      const reader = await this.directoryAt(event.position);
      await this.forEachPage(
        (after) => billingCandidates(reader, firmId, after, PAGE),
        (people, page) => this.queueLicenseUsage(firmId, people, event, page),
      );
    } else if (USER_EVENTS.has(event.type)) {
      const userId = event.data.userId;
      if (typeof userId === 'string') await this.invite(firmId, [userId], event, 'user');
    } else {
      const reader = await this.directoryAt(event.position);
      for (const role of FIRM_EVENTS[event.type] ?? []) {
        await this.forEachPage(
          (after) => peopleWithRole(reader, firmId, role, after, PAGE),
          (people, page) =>
            this.invite(
              firmId,
              people.map((p) => p.userId),
              event,
              `${role}/${page}`,
            ),
        );
      }
    }
  }

  /** One email per active firm admin or billing-contact case manager among `people`. */
  private async queueLicenseUsage(
    firmId: string,
    people: readonly PersonDoc[],
    event: RecordedEvent,
    page: number,
  ): Promise<void> {
    const usage = event.data as unknown as LicenseUsageFigures & { threshold: Threshold };
    const notification = licenseUsageKind(usage.threshold);
    const cause = causeOf(event);
    const emails: QueuedEmail[] = [];
    for (const { userId, user } of await this.usersOf(
      firmId,
      people.map((p) => p.userId),
    )) {
      if (user.status !== 'active') continue;
      const { profile } = user;
      if (!isBillingContact(profile)) continue;
      emails.push({
        messageId: deterministicId(notification, firmId, event.metadata.eventId, userId),
        notification,
        recipient: recipientOf(user, userId),
        usage: {
          threshold: usage.threshold,
          licenseCount: usage.licenseCount,
          seatsInUse: usage.seatsInUse,
          unutilized: usage.unutilized,
          usagePercent: usage.usagePercent,
        },
        cause,
      });
    }
    if (emails.length === 0) return;
    await this.commands.handle(
      streams.notifications(firmId),
      notificationsDecider,
      { type: 'QueueEmails', emails },
      this.envelope(event, `queue/${page}`),
    );
  }

  /**
   * Invites those of `userIds` whom MFA applies to now and who have not
   * enrolled; re-arms those it does not apply to. An event that stops MFA (a
   * switch turned off, a cancellation, a deactivation) re-arms all it concerns
   * even when the streams have already moved on: a quick off-and-on then still
   * invites again.
   */
  private async invite(
    firmId: string,
    userIds: readonly string[],
    event: RecordedEvent,
    part: string,
  ): Promise<void> {
    const cause = causeOf(event);
    const invitations: QueuedEmail[] = [];
    const rearm: string[] = [];
    if (stopsMfa(event)) {
      // Nothing to read: all it concerns are re-armed (the stream ignores those never invited).
      rearm.push(...userIds);
    } else {
      const [subscription, enablement] = await Promise.all([
        this.commands.load(streams.subscription(firmId), subscriptionDecider),
        this.commands.load(streams.enablement(firmId), enablementDecider),
      ]);
      // Without an active subscription nobody is invited: its cancellation re-armed them all.
      if (subscription.state.status !== 'active') return;
      const users = await Promise.all(
        userIds.map((userId) => this.commands.load(streams.user(firmId, userId), userDecider)),
      );
      for (const [i, { state: user }] of users.entries()) {
        const userId = userIds[i];
        if (user.status === 'unregistered') continue;
        const applies =
          STAFF_ROLES.includes(user.profile.role) &&
          userIsMfaEnabled(user, subscription.state, enablement.state);
        // A user just registered was never invited: nothing to re-arm.
        if (!applies) {
          if (event.type !== 'UserRegistered') rearm.push(userId);
        } else if (user.mfa.factors.size === 0) {
          invitations.push({
            messageId: deterministicId(
              'enrollment-invitation',
              firmId,
              event.metadata.eventId,
              userId,
            ),
            notification: 'enrollment-invitation',
            recipient: recipientOf(user, userId),
            usage: null,
            cause,
          });
        }
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

  /** The registered users among `userIds`, as their streams say now. */
  private async usersOf(firmId: string, userIds: readonly string[]) {
    const loaded = await Promise.all(
      userIds.map((userId) => this.commands.load(streams.user(firmId, userId), userDecider)),
    );
    return loaded.flatMap(({ state: user }, i) =>
      user.status === 'unregistered' ? [] : [{ userId: userIds[i], user }],
    );
  }

  private async forEachPage(
    read: (after: PersonDoc | undefined) => Promise<PersonDoc[]>,
    each: (people: PersonDoc[], page: number) => Promise<void>,
  ): Promise<void> {
    let last: PersonDoc | undefined;
    for (let page = 0; ; page++) {
      const people = await read(last);
      if (people.length > 0) await each(people, page);
      if (people.length < PAGE) return;
      last = people[people.length - 1];
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

/** Whom an email to this user goes to, as the user's stream says now. */
export function recipientOf(user: RegisteredUser, userId: string): Recipient {
  const { name, email, role } = user.profile;
  return { userId, name, email, role };
}
