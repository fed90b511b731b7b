import type { RecordedEvent } from '../src/event-store/event-store.port';
import type { UserRole } from '../src/directory/user.decider';
import {
  ChangeSet,
  DocumentChange,
  DocumentSnapshot,
  key,
  Projection,
  ReadModelReader,
} from '../src/projection-engine/projection';
import {
  emptyScope,
  enablementOf,
  evolveUserFacts,
  isScopeEvent,
  isUserEvent,
  mfaEnabled,
  ROLE_KEYS,
  RoleCounts,
  SCOPE_EVENTS,
  scopeChanges,
  ScopeDoc,
  text,
  USER_EVENTS,
  UserFacts,
  zeroCounts,
} from './mfa-scope';

/*
 * Per-role counters (GET /v1/firms/{firmId}/mfa/counters).
 *
 *   enabled[role]  active users of the role who are MFA-enabled right now:
 *                  subscription active AND user active AND a switch covers the
 *                  role (and, for corp users and foreign nationals, their
 *                  corporation), by the enablement decider's own rule.
 *   enrolled[role] users of the role holding at least one confirmed factor
 *                  (FactorConfirmed since their last EnrollmentReset), whether
 *                  or not MFA is enforced on them now: a dormant enrollment
 *                  still holds a seat and is still listed under "Enrolled
 *                  Users" (admin guide B.5, B.7), so the enrolled counters add
 *                  up to that list and to the seats in use.
 *
 * The projection keeps, per (role, corporation), how many users are active and
 * how many are enrolled. "Enabled" is derived when asked, from those groups and
 * the firm's switches: switching "all corp users" on or off, or adding a
 * corporation, costs time in proportion to the number of corporations, never
 * to the number of users.
 */

/** A user's facts; its group is (role, corporation), and it is enrolled while it holds a factor. */
type UserDoc = UserFacts;

interface GroupDoc {
  firmId: string;
  role: UserRole;
  corporationId: string | null;
  active: number;
  enrolled: number;
}

export interface RoleCounters {
  enabled: RoleCounts;
  enrolled: RoleCounts;
}

export const roleCountersProjection: Projection = {
  // 2: a user's document holds its factors (UserFacts) rather than their ids.
  name: 'role-counters',
  version: 2,
  collections: [
    { name: 'scopes', fields: [], indexes: [] },
    { name: 'users', fields: [], indexes: [] },
    { name: 'groups', fields: ['firmId'], indexes: [['firmId', 'id']] },
  ],
  handles: [...SCOPE_EVENTS, ...USER_EVENTS],

  evolve(event: RecordedEvent, documents: DocumentSnapshot): DocumentChange[] {
    if (isScopeEvent(event.type)) return scopeChanges(event, documents);
    if (!isUserEvent(event.type)) return [];
    const firmId = event.metadata.firmId;
    const userKey = key(firmId, text(event, 'userId'));
    const before = documents.get<UserDoc>('users', userKey);
    const after = evolveUserFacts(before, event, () => ({}));
    if (after === before) return [];
    // Out of its group as it was, into its group as it is: maybe the same group twice.
    const changes = new ChangeSet(documents);
    if (before) count(changes, before, -1);
    if (after) {
      count(changes, after, +1);
      changes.put('users', userKey, after);
    }
    return changes.list();
  },
};

function count(changes: ChangeSet, user: UserDoc, sign: 1 | -1): void {
  const id = key(user.firmId, user.role, user.corporationId ?? '');
  const group = changes.get<GroupDoc>('groups', id) ?? {
    firmId: user.firmId,
    role: user.role,
    corporationId: user.corporationId,
    active: 0,
    enrolled: 0,
  };
  changes.put('groups', id, {
    ...group,
    active: group.active + (user.active ? sign : 0),
    enrolled: group.enrolled + (user.factors.length > 0 ? sign : 0),
  });
}

/** One read of the firm's switches and one of its (role, corporation) groups. */
export async function roleCounters(reader: ReadModelReader, firmId: string): Promise<RoleCounters> {
  const scope = (await reader.get<ScopeDoc>('scopes', firmId)) ?? emptyScope(firmId);
  const groups = await reader.find<GroupDoc>('groups', {
    equals: { firmId },
    orderBy: ['id'],
    limit: 1_000_000,
  });
  const enablement = enablementOf(scope);
  const counters: RoleCounters = { enabled: zeroCounts(), enrolled: zeroCounts() };
  for (const group of groups) {
    const roleKey = ROLE_KEYS[group.role];
    counters.enrolled[roleKey] += group.enrolled;
    if (mfaEnabled(scope, enablement, { ...group, active: true })) {
      counters.enabled[roleKey] += group.active;
    }
  }
  return counters;
}
