import type { RecordedEvent } from '../src/event-store/event-store.port';
import { key, Projection, ProjectionWriter, ReadModelReader } from './projection';
import { isRole, text } from './mfa-scope';

/*
 * The corporation picker (GET /v1/firms/{firmId}/corporations?search=).
 *
 * One entry per corporation the firm registered (CorporationRegistered /
 * Renamed) or that a user names without it being registered yet (then its name
 * is null and it shows, and sorts, by its id). `corpUsers` and
 * `foreignNationals` count the corporation's *active* users of each role; a
 * user moving to another corporation or role, deactivated or reactivated,
 * moves its count. Searched case-insensitively anywhere in the shown name,
 * sorted by shown name, then id.
 */

interface CorporationDoc {
  firmId: string;
  corporationId: string;
  name: string | null;
  nameKey: string;
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
  version: 1,
  collections: [
    {
      name: 'corporations',
      fields: ['firmId', 'nameKey'],
      indexes: [['firmId', 'nameKey', 'id']],
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

  async apply(event: RecordedEvent, writer: ProjectionWriter): Promise<void> {
    const firmId = event.metadata.firmId;
    if (event.type === 'CorporationRegistered' || event.type === 'CorporationRenamed') {
      const corporationId = text(event, 'corporationId');
      const name = text(event, 'name');
      const current = await corporation(writer, firmId, corporationId);
      writer.put('corporations', key(firmId, corporationId), {
        ...current,
        name,
        nameKey: name.toLowerCase(),
      });
      return;
    }
    const memberKey = key(firmId, text(event, 'userId'));
    const before = await writer.get<MemberDoc>('members', memberKey);
    const after = evolveMember(before, event, firmId);
    if (after === before) return;
    if (before) await count(writer, before, -1);
    if (after) {
      await count(writer, after, +1);
      writer.put('members', memberKey, after);
    } else {
      writer.delete('members', memberKey);
    }
  },
};

function evolveMember(
  member: MemberDoc | undefined,
  event: RecordedEvent,
  firmId: string,
): MemberDoc | undefined {
  switch (event.type) {
    case 'UserRegistered':
    case 'UserProfileUpdated': {
      const role = event.data.role;
      if (!isRole(role)) throw new Error(`${event.type}.role is not a known role`);
      if (role !== 'corp-user' && role !== 'foreign-national') return undefined;
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

async function corporation(
  writer: ProjectionWriter,
  firmId: string,
  corporationId: string,
): Promise<CorporationDoc> {
  return (
    (await writer.get<CorporationDoc>('corporations', key(firmId, corporationId))) ?? {
      firmId,
      corporationId,
      name: null,
      nameKey: corporationId.toLowerCase(),
      corpUsers: 0,
      foreignNationals: 0,
    }
  );
}

async function count(writer: ProjectionWriter, member: MemberDoc, sign: 1 | -1): Promise<void> {
  const current = await corporation(writer, member.firmId, member.corporationId);
  const field = member.role === 'corp-user' ? 'corpUsers' : 'foreignNationals';
  writer.put('corporations', key(member.firmId, member.corporationId), {
    ...current,
    [field]: current[field] + (member.active ? sign : 0),
  });
}

export async function corporations(
  reader: ReadModelReader,
  firmId: string,
  query: { search?: string; limit: number; after?: [string, string] },
): Promise<{ items: CorporationItem[]; next: [string, string] | null }> {
  const search = query.search?.trim().toLowerCase();
  const found = await reader.find<CorporationDoc>('corporations', {
    equals: { firmId },
    ...(search ? { contains: { fields: ['nameKey'], text: search } } : {}),
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
