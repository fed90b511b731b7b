import type { RecordedEvent } from '../src/event-store/event-store.port';
import type { UserRole } from '../src/directory/user.decider';
import { key, Projection, ProjectionWriter, ReadModelReader } from './projection';
import {
  emptyScope,
  enablementOf,
  evolveScope,
  mfaEnabled,
  role,
  SCOPE_EVENTS,
  ScopeDoc,
  text,
} from './mfa-scope';

/*
 * Who the notification emails go to (DESIGN §5), for the notification policy
 * (src/notifications/notification-policy.ts); no dashboard reads it.
 *   people   one document per registered user: name, email, role, active,
 *            the billing-contact and firm-admin flags, and `enrolled` (a
 *            confirmed factor since the last reset). Indexed by role, for the
 *            invitations a switch turned on sends to the firm's case managers,
 *            and by `billing`: 1 for an *active* firm admin or an *active* case
 *            manager flagged as billing contact, the license-usage recipients.
 *   scopes   the firm's subscription status and switches (mfa-scope.ts), to
 *            tell whether MFA applies to a user.
 */

export interface PersonDoc {
  firmId: string;
  userId: string;
  name: string;
  email: string;
  role: UserRole;
  corporationId: string | null;
  active: boolean;
  firmAdmin: boolean;
  billingContact: boolean;
  enrolled: boolean;
  /** 1 when this person receives the license-usage emails. */
  billing: 0 | 1;
}

export const mailDirectoryProjection: Projection = {
  name: 'mail-directory',
  version: 1,
  collections: [
    { name: 'scopes', fields: [], indexes: [] },
    {
      name: 'people',
      fields: ['firmId', 'role', 'billing'],
      indexes: [
        ['firmId', 'role', 'id'],
        ['firmId', 'billing', 'id'],
      ],
    },
  ],
  handles: [
    ...SCOPE_EVENTS,
    'UserRegistered',
    'UserProfileUpdated',
    'UserDeactivated',
    'UserReactivated',
    'FactorConfirmed',
    'EnrollmentReset',
  ],

  async apply(event: RecordedEvent, writer: ProjectionWriter): Promise<void> {
    const firmId = event.metadata.firmId;
    if ((SCOPE_EVENTS as readonly string[]).includes(event.type)) {
      const scope = (await writer.get<ScopeDoc>('scopes', firmId)) ?? emptyScope(firmId);
      writer.put('scopes', firmId, evolveScope(scope, event));
      return;
    }
    const userId = text(event, 'userId');
    const id = key(firmId, userId);
    const before = await writer.get<PersonDoc>('people', id);
    const after = evolvePerson(before, event, firmId, userId);
    if (after && after !== before) writer.put('people', id, withBilling(after));
  },
};

function evolvePerson(
  person: PersonDoc | undefined,
  event: RecordedEvent,
  firmId: string,
  userId: string,
): PersonDoc | undefined {
  switch (event.type) {
    case 'UserRegistered':
    case 'UserProfileUpdated': {
      const corporationId = event.data.corporationId;
      return {
        firmId,
        userId,
        name: text(event, 'name'),
        email: text(event, 'email'),
        role: role(event),
        corporationId: typeof corporationId === 'string' ? corporationId : null,
        active: person?.active ?? true,
        firmAdmin: event.data.firmAdmin === true,
        billingContact: event.data.billingContact === true,
        enrolled: person?.enrolled ?? false,
        billing: 0,
      };
    }
    case 'UserDeactivated':
      return person && { ...person, active: false };
    case 'UserReactivated':
      return person && { ...person, active: true };
    case 'FactorConfirmed':
      return person && !person.enrolled ? { ...person, enrolled: true } : person;
    case 'EnrollmentReset':
      return person?.enrolled ? { ...person, enrolled: false } : person;
    default:
      return person;
  }
}

function withBilling(person: PersonDoc): PersonDoc {
  const billing =
    person.active &&
    (person.firmAdmin || (person.role === 'case-manager' && person.billingContact));
  return { ...person, billing: billing ? 1 : 0 };
}

/** The license-usage recipients of a firm, by user id, one page at a time. */
export const billingRecipients = (
  reader: ReadModelReader,
  firmId: string,
  after: PersonDoc | undefined,
  limit: number,
) => page(reader, { firmId, billing: 1 }, after, limit);

/** A firm's users of one role, by user id, one page at a time. */
export const peopleWithRole = (
  reader: ReadModelReader,
  firmId: string,
  userRole: UserRole,
  after: PersonDoc | undefined,
  limit: number,
) => page(reader, { firmId, role: userRole }, after, limit);

function page(
  reader: ReadModelReader,
  equals: Record<string, string | number>,
  after: PersonDoc | undefined,
  limit: number,
): Promise<PersonDoc[]> {
  return reader.find<PersonDoc>('people', {
    equals,
    orderBy: ['id'],
    after: after && [key(after.firmId, after.userId)],
    limit,
  });
}

export const person = (reader: ReadModelReader, firmId: string, userId: string) =>
  reader.get<PersonDoc>('people', key(firmId, userId));

export async function scopeOf(reader: ReadModelReader, firmId: string): Promise<ScopeDoc> {
  return (await reader.get<ScopeDoc>('scopes', firmId)) ?? emptyScope(firmId);
}

/** Whether MFA applies to this person now, under the firm's scope. */
export const mfaAppliesTo = (scope: ScopeDoc, who: PersonDoc) =>
  mfaEnabled(scope, enablementOf(scope), who);
