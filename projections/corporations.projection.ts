import type { RecordedEvent } from '../src/event-store/event-store.port';
import {
  ChangeSet,
  DocumentChange,
  DocumentSnapshot,
  key,
  Projection,
  put,
  ReadModelReader,
} from '../src/projection-engine/projection';
import { isRole, text } from './mfa-scope';
import { searchFold } from '../src/shared/search-folding';

/*
 * The corporation picker (GET /v1/firms/{firmId}/corporations?search=).
 *
 * One entry per corporation the firm registered (CorporationRegistered /
 * Renamed) or that a user names without it being registered yet (then its name
 * is null and it shows, and sorts, by its id). `corpUsers` and
 * `foreignNationals` count the corporation's *active* users of each role; a
 * user moving to another corporation or role, deactivated or reactivated,
 * moves its count. Searched anywhere in the shown name, through its folded
 * copy (searchFold: case, accents and Unicode forms ignored), sorted by the
 * shown name in lower case, then id.
 */

interface CorporationDoc {
  firmId: string;
  corporationId: string;
  name: string | null;
  /** The order and the cursor: the shown name in lower case. */
  nameKey: string;
  nameFold: string;
  corpUsers: number;
  foreignNationals: number;
}

/** Only users of the two corporate roles are kept. */
interface MemberDoc {
  firmId: string;
  role: 'corp-user' | 'foreign-national';
  corporationId: string;
  active: boolean;
}

export interface CorporationItem {
  corporationId: string;
  name: string;
  corpUsers: number;
  foreignNationals: number;
}

export const corporationsProjection: Projection = {
  name: 'corporations',
  // 2: a folded copy of the shown name for the search (nameFold).
  version: 2,
  collections: [
    {
      name: 'corporations',
      fields: ['firmId', 'nameKey', 'nameFold'],
      indexes: [['firmId', 'nameKey', 'id', 'nameFold']],
      search: ['nameFold'],
    },
    { name: 'members', fields: [], indexes: [] },
  ],
  handles: [
    'CorporationRegistered',
    'CorporationRenamed',
    'UserRegistered',
    'UserProfileUpdated',
    'UserDeactivated',
    'UserReactivated',
  ],

  evolve(event: RecordedEvent, documents: DocumentSnapshot): DocumentChange[] {
    const firmId = event.metadata.firmId;
    switch (event.type) {
      case 'CorporationRegistered':
      case 'CorporationRenamed': {
        const corporationId = text(event, 'corporationId');
        const name = text(event, 'name');
        const current = corporation(documents, firmId, corporationId);
        return [
          put('corporations', key(firmId, corporationId), {
            ...current,
            name,
            nameKey: name.toLowerCase(),
            nameFold: searchFold(name),
          }),
        ];
      }
      case 'UserRegistered':
      case 'UserProfileUpdated':
      case 'UserDeactivated':
      case 'UserReactivated': {
        const memberKey = key(firmId, text(event, 'userId'));
        const before = documents.get<MemberDoc>('members', memberKey);
        const after = evolveMember(before, event, firmId);
        if (after === before) return [];
        // Out of its corporation as it was, into its corporation as it is: maybe the same twice.
        const changes = new ChangeSet(documents);
        if (before) count(changes, before, -1);
        if (after) {
          count(changes, after, +1);
          changes.put('members', memberKey, after);
        } else {
          changes.remove('members', memberKey);
        }
        return changes.list();
      }
      default:
        return [];
    }
  },
};

/** A member after one event; null for a user of another role, or never registered. */
function evolveMember(
  member: MemberDoc | null,
  event: RecordedEvent,
  firmId: string,
): MemberDoc | null {
  switch (event.type) {
    case 'UserRegistered':
    case 'UserProfileUpdated': {
      const role = event.data.role;
      if (!isRole(role)) throw new Error(`${event.type}.role is not a known role`);
      if (role !== 'corp-user' && role !== 'foreign-national') return null;
      return {
        firmId,
        role,
        corporationId: text(event, 'corporationId'),
        active: member?.active ?? true,
      };
    }
    case 'UserDeactivated':
      return member && { ...member, active: false };
    case 'UserReactivated':
      return member && { ...member, active: true };
    default:
      return member;
  }
}

function corporation(
  documents: DocumentSnapshot,
  firmId: string,
  corporationId: string,
): CorporationDoc {
  return (
    documents.get<CorporationDoc>('corporations', key(firmId, corporationId)) ?? {
      firmId,
      corporationId,
      name: null,
      nameKey: corporationId.toLowerCase(),
      nameFold: searchFold(corporationId),
      corpUsers: 0,
      foreignNationals: 0,
    }
  );
}

function count(changes: ChangeSet, member: MemberDoc, sign: 1 | -1): void {
  const current = corporation(changes, member.firmId, member.corporationId);
  const field = member.role === 'corp-user' ? 'corpUsers' : 'foreignNationals';
  changes.put('corporations', key(member.firmId, member.corporationId), {
    ...current,
    [field]: current[field] + (member.active ? sign : 0),
  });
}

export async function corporations(
  reader: ReadModelReader,
  firmId: string,
  query: { search?: string; limit: number; after?: [string, string] },
): Promise<{ items: CorporationItem[]; next: [string, string] | null }> {
  const search = searchFold(query.search ?? '').trim();
  const found = await reader.find<CorporationDoc>('corporations', {
    equals: { firmId },
    ...(search ? { contains: { fields: ['nameFold'], text: search } } : {}),
    orderBy: ['nameKey', 'id'],
    ...(query.after ? { after: [query.after[0], key(firmId, query.after[1])] } : {}),
    limit: query.limit + 1,
  });
  const page = found.slice(0, query.limit);
  const last = page[page.length - 1];
  return {
    items: page.map((c) => ({
      corporationId: c.corporationId,
      name: c.name ?? c.corporationId,
      corpUsers: c.corpUsers,
      foreignNationals: c.foreignNationals,
    })),
    next: found.length > query.limit && last ? [last.nameKey, last.corporationId] : null,
  };
}
