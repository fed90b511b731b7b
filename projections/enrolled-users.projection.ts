import type { RecordedEvent } from '../src/event-store/event-store.port';
import type { UserRole } from '../src/directory/user.decider';
import {
  DocumentChange,
  DocumentSnapshot,
  key,
  Projection,
  put,
  ReadModelReader,
  remove,
} from '../src/projection-engine/projection';
import {
  emptyScope,
  enablementOf,
  evolveUserFacts,
  isScopeEvent,
  isUserEvent,
  mfaEnabled,
  SCOPE_EVENTS,
  scopeChanges,
  ScopeDoc,
  text,
  USER_EVENTS,
  UserFacts,
} from './mfa-scope';
import { searchFold } from '../src/shared/search-folding';

/*
 * The "Enrolled Users" list (GET /v1/firms/{firmId}/mfa/enrolled-users).
 *
 * A user is listed while it holds at least one confirmed factor: from its
 * first FactorConfirmed after its last EnrollmentReset, until the next
 * EnrollmentReset (a superuser's reset, or the one appended with a
 * deactivation). Reactivation restores nothing.
 *   factors     the distinct factor types confirmed since the last reset
 *   enrolledAt  the first confirmation since the last reset
 *   enforced    whether MFA applies to the user right now (subscription active,
 *               user active, a switch covers it). Enrolled users outside every
 *               enabled scope, inactive, or of a cancelled subscription stay
 *               listed as "not enforced" (DESIGN §3: disabling a scope resets
 *               nobody). It is computed when the page is read, from the firm's
 *               switches, so a switch change never rewrites the list.
 *
 * Every registered user has a profile document (so a later enrollment knows
 * its name); the list itself holds only enrolled users, with a lower-case copy
 * of the name for the order (name, then user id) and the cursor, and folded
 * copies of name and organization for the search (searchFold: case, accents
 * and Unicode forms ignored). The copies never leave this file: an answer is
 * built field by field.
 */

interface ProfileDoc extends UserFacts {
  name: string;
  email: string;
  organization: string | null;
}

interface EntryDoc {
  firmId: string;
  userId: string;
  name: string;
  email: string;
  organization: string | null;
  role: UserRole;
  corporationId: string | null;
  active: boolean;
  factors: Array<'totp' | 'webauthn'>;
  enrolledAt: string;
  /** The order and the cursor: the name in lower case (as before search folding, so pages keep their order). */
  nameKey: string;
  nameFold: string;
  orgFold: string;
}

export interface EnrolledUser {
  userId: string;
  name: string;
  email: string;
  organization: string | null;
  role: UserRole;
  corporationId: string | null;
  factors: Array<'totp' | 'webauthn'>;
  enrolledAt: string;
  enforced: boolean;
}

export const enrolledUsersProjection: Projection = {
  name: 'enrolled-users',
  // 2: folded copies for the search (nameFold, orgFold) in place of the lower-case orgKey.
  version: 2,
  collections: [
    { name: 'scopes', fields: [], indexes: [] },
    { name: 'profiles', fields: [], indexes: [] },
    {
      name: 'entries',
      fields: ['firmId', 'nameKey', 'nameFold', 'orgFold', 'role', 'corporationId'],
      // Each index serves one filter and the order, and carries the searched fields,
      // so a search walks the index alone and reads only the documents of its page.
      indexes: [
        ['firmId', 'nameKey', 'id', 'nameFold', 'orgFold', 'role', 'corporationId'],
        ['firmId', 'role', 'nameKey', 'id', 'nameFold', 'orgFold', 'corporationId'],
        ['firmId', 'corporationId', 'nameKey', 'id', 'nameFold', 'orgFold', 'role'],
      ],
      search: ['nameFold', 'orgFold'],
    },
  ],
  handles: [...SCOPE_EVENTS, ...USER_EVENTS],

  evolve(event: RecordedEvent, documents: DocumentSnapshot): DocumentChange[] {
    if (isScopeEvent(event.type)) return scopeChanges(event, documents);
    if (!isUserEvent(event.type)) return [];
    const firmId = event.metadata.firmId;
    const userId = text(event, 'userId');
    const id = key(firmId, userId);
    const before = documents.get<ProfileDoc>('profiles', id);
    const after = evolveUserFacts(before, event, profileOf);
    if (!after || after === before) return [];
    const changes = [put('profiles', id, after)];
    const entry = entryOf(after);
    if (entry) changes.push(put('entries', id, entry));
    else if (before && before.factors.length > 0) changes.push(remove('entries', id));
    return changes;
  },
};

/** The fields of the list that only this projection keeps, from a registration or profile update. */
function profileOf(event: RecordedEvent): Omit<ProfileDoc, keyof UserFacts> {
  const organization = event.data.organization;
  return {
    name: text(event, 'name'),
    email: text(event, 'email'),
    organization: typeof organization === 'string' ? organization : null,
  };
}

function entryOf(profile: ProfileDoc): EntryDoc | undefined {
  if (profile.factors.length === 0) return undefined;
  const types = new Set(profile.factors.map((f) => f.type));
  return {
    firmId: profile.firmId,
    userId: profile.userId,
    name: profile.name,
    email: profile.email,
    organization: profile.organization,
    role: profile.role,
    corporationId: profile.corporationId,
    active: profile.active,
    factors: (['totp', 'webauthn'] as const).filter((t) => types.has(t)),
    // Factors are kept in confirmation order: the first is the enrollment.
    enrolledAt: profile.factors[0].confirmedAt,
    nameKey: profile.name.toLowerCase(),
    nameFold: searchFold(profile.name),
    orgFold: searchFold(profile.organization ?? ''),
  };
}

export interface EnrolledUsersQuery {
  search?: string;
  role?: UserRole;
  corporationId?: string;
  limit: number;
  /** The (lower-case name, user id) of the last item of the previous page. */
  after?: [string, string];
}

export async function enrolledUsers(
  reader: ReadModelReader,
  firmId: string,
  query: EnrolledUsersQuery,
): Promise<{ items: EnrolledUser[]; next: [string, string] | null }> {
  const equals: Record<string, string> = { firmId };
  if (query.role) equals.role = query.role;
  if (query.corporationId) equals.corporationId = query.corporationId;
  // A search that folds to nothing (blanks, accents alone) filters nothing, as an empty one.
  const search = searchFold(query.search ?? '').trim();
  // One more than a page tells whether another page exists.
  const found = await reader.find<EntryDoc>('entries', {
    equals,
    ...(search ? { contains: { fields: ['nameFold', 'orgFold'], text: search } } : {}),
    orderBy: ['nameKey', 'id'],
    ...(query.after ? { after: [query.after[0], key(firmId, query.after[1])] } : {}),
    limit: query.limit + 1,
  });
  const page = found.slice(0, query.limit);
  const scope = (await reader.get<ScopeDoc>('scopes', firmId)) ?? emptyScope(firmId);
  const enablement = enablementOf(scope);
  const items = page.map((entry) => ({
    userId: entry.userId,
    name: entry.name,
    email: entry.email,
    organization: entry.organization,
    role: entry.role,
    corporationId: entry.corporationId,
    factors: entry.factors,
    enrolledAt: entry.enrolledAt,
    enforced: mfaEnabled(scope, enablement, entry),
  }));
  const last = page[page.length - 1];
  return {
    items,
    next: found.length > query.limit && last ? [last.nameKey, last.userId] : null,
  };
}
