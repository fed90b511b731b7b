import type { RecordedEvent } from '../src/event-store/event-store.port';
import { isBillingContact, STAFF_ROLES, UserRole } from '../src/directory/user.decider';
import {
  DocumentChange,
  DocumentSnapshot,
  key,
  Projection,
  put,
  ReadModelReader,
  remove,
} from '../src/projection-engine/projection';
import { role, text } from './mfa-scope';

/*
 * An index of the users notification emails may go to (DESIGN §5), for the
 * notification policy (src/notifications/notification-policy.ts); no
 * dashboard reads it. One small document per user who is staff (case manager
 * or vendor case manager: invited to enroll) or a possible license-usage
 * recipient (a firm admin of any role, or a case manager flagged as billing
 * contact):
 *   role     indexed, for the invitations a switch turned on sends to a
 *            firm's case managers or vendor case managers
 *   billing  1 for a firm admin or a billing-contact case manager, indexed
 * Whether such a user is active, enrolled or MFA-enabled is not kept here: the
 * policy reads it from the user's own stream when it decides, so this index
 * only changes when the host changes a user's role or flags.
 */

export interface PersonDoc {
  firmId: string;
  userId: string;
  role: UserRole;
  /** 1 when the user is a firm admin or a case manager flagged as billing contact. */
  billing: 0 | 1;
}

export const mailDirectoryProjection: Projection = {
  name: 'mail-directory',
  version: 1,
  collections: [
    {
      name: 'people',
      fields: ['firmId', 'role', 'billing'],
      indexes: [
        ['firmId', 'role', 'id'],
        ['firmId', 'billing', 'id'],
      ],
    },
  ],
  handles: ['UserRegistered', 'UserProfileUpdated'],

  evolve(event: RecordedEvent, documents: DocumentSnapshot): DocumentChange[] {
    if (event.type !== 'UserRegistered' && event.type !== 'UserProfileUpdated') return [];
    const firmId = event.metadata.firmId;
    const userId = text(event, 'userId');
    const id = key(firmId, userId);
    const userRole = role(event);
    const billing = isBillingContact({
      role: userRole,
      firmAdmin: event.data.firmAdmin === true,
      billingContact: event.data.billingContact === true,
    });
    if (STAFF_ROLES.includes(userRole) || billing) {
      return [put('people', id, { firmId, userId, role: userRole, billing: billing ? 1 : 0 })];
    }
    if (event.type === 'UserProfileUpdated' && documents.get('people', id)) {
      return [remove('people', id)];
    }
    return [];
  },
};

/** Possible license-usage recipients of a firm, by user id, one page at a time. */
export const billingCandidates = (
  reader: ReadModelReader,
  firmId: string,
  after: PersonDoc | undefined,
  limit: number,
) => page(reader, { firmId, billing: 1 }, after, limit);

/** A firm's users of one staff role, by user id, one page at a time. */
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
