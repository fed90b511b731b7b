import fc from 'fast-check';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import {
  enrolledUsers,
  enrolledUsersProjection,
} from '../../projections/enrolled-users.projection';
import type { ReadModelReader } from '../../src/projection-engine/projection';
import { schemaOf } from '../../src/projection-engine/projection-engine';
import type { DocumentChange, ReadModelTarget } from '../../src/read-model/read-model-store.port';
import { SqliteReadModelStore } from '../../src/read-model/sqlite-read-model-store';
import { searchFold } from '../../src/shared/search-folding';
import { tempDir } from '../support/harness';

/*
 * The enrolled-users search on SQLite goes through a substring index (FTS5
 * trigram over the folded copies; a scan of the compound index for texts of
 * one or two characters). It must answer exactly what a plain scan answers:
 * every entry of the firm whose folded name or organization contains the
 * folded search, ordered by lower-case name (code point order), then user id,
 * page after page through the cursor. Compared here on random names, built
 * from characters that fold in interesting ways, written through the main
 * connection or the writer thread, loaded before or after the index exists
 * (a rebuild), then changed and removed (the index's triggers).
 */

const schema = schemaOf(enrolledUsersProjection);
const FIRMS = ['acme', 'globex'];

// Letters that fold to others (ß → ss, ı → i, İ → i, é → e, ǅ → dž), marks alone, quotes
// and FTS5 syntax, a character beyond U+FFFF, blanks.
const UNITS = [
  'a',
  'A',
  's',
  'S',
  'ß',
  'ẞ',
  'i',
  'I',
  'ı',
  'İ',
  'e',
  'é',
  'e\u0301',
  'É',
  'n',
  'ñ',
  'z',
  'ǅ',
  'ﬁ',
  '\u0301',
  ' ',
  '"',
  '*',
  '-',
  ':',
  '{',
  '😀',
];
const name = fc.string({ unit: fc.constantFrom(...UNITS), maxLength: 10 });

interface Person {
  firmId: string;
  userId: string;
  name: string;
  organization: string | null;
}

const people = fc.uniqueArray(
  fc.record({
    firmId: fc.constantFrom(...FIRMS),
    userId: fc.integer({ min: 0, max: 60 }).map((n) => `u-${n}`),
    name,
    organization: fc.option(name, { nil: null }),
  }),
  { selector: (p) => `${p.firmId}/${p.userId}`, maxLength: 30 },
);

function entry(person: Person): DocumentChange {
  return {
    collection: 'entries',
    id: `${person.firmId}/${person.userId}`,
    doc: {
      firmId: person.firmId,
      userId: person.userId,
      name: person.name,
      email: `${person.userId}@example.com`,
      organization: person.organization,
      role: 'case-manager',
      corporationId: null,
      active: true,
      factors: ['totp'],
      enrolledAt: '2026-01-15T10:00:00.000Z',
      nameKey: person.name.toLowerCase(),
      nameFold: searchFold(person.name),
      orgFold: searchFold(person.organization ?? ''),
    },
  };
}

/** The plain scan: filter, then sort by UTF-8 bytes (code points), as the stores order text. */
function scan(all: Person[], firmId: string, search: string): string[] {
  const text = searchFold(search).trim();
  const bytes = (s: string) => Buffer.from(s, 'utf8');
  return all
    .filter(
      (p) =>
        p.firmId === firmId &&
        (searchFold(p.name).includes(text) || searchFold(p.organization ?? '').includes(text)),
    )
    .sort(
      (a, b) =>
        Buffer.compare(bytes(a.name.toLowerCase()), bytes(b.name.toLowerCase())) ||
        Buffer.compare(bytes(a.userId), bytes(b.userId)),
    )
    .map((p) => p.userId);
}

/** Every page of a search, through the cursor. */
async function pages(reader: ReadModelReader, firmId: string, search: string, limit: number) {
  const found: string[] = [];
  let after: [string, string] | undefined;
  for (;;) {
    const page = await enrolledUsers(reader, firmId, { search, limit, after });
    found.push(...page.items.map((item) => item.userId));
    if (!page.next) return found;
    after = page.next;
  }
}

/** Searches: pieces of the names (as typed: upper case, decomposed), and random text. */
const searches = (all: Person[]) =>
  fc.array(
    fc.oneof(
      name,
      fc
        .tuple(
          fc.constantFrom('', ...all.map((p) => p.name), ...all.map((p) => p.organization ?? '')),
          fc.nat(),
          fc.integer({ min: 1, max: 6 }),
          fc.constantFrom(
            (s: string) => s,
            (s: string) => s.toUpperCase(),
            (s: string) => s.normalize('NFD'),
          ),
        )
        .map(([source, start, length, typed]) => {
          const chars = [...source];
          const from = chars.length ? start % chars.length : 0;
          return typed(chars.slice(from, from + length).join(''));
        }),
    ),
    { minLength: 1, maxLength: 8 },
  );

describe('the enrolled-users search index (SQLite FTS5 trigram)', () => {
  let dir: string;
  let store: SqliteReadModelStore;
  let threaded: SqliteReadModelStore;

  beforeAll(() => {
    dir = tempDir('mfa-search-index-');
    store = new SqliteReadModelStore(join(dir, 'readmodels.sqlite'));
    threaded = new SqliteReadModelStore(join(dir, 'readmodels.sqlite'), { writerThread: true });
  });
  afterAll(async () => {
    await threaded.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('answers exactly what a plain folded substring scan answers', async () => {
    await fc.assert(
      fc.asyncProperty(
        people.chain((before) =>
          fc.record({
            before: fc.constant(before),
            // Then some renamed (another name, or none of an organization) and some removed.
            after: fc.array(fc.tuple(fc.nat(), fc.oneof(fc.constant(null), name), fc.boolean()), {
              maxLength: 6,
            }),
            searches: searches(before),
            limit: fc.integer({ min: 1, max: 7 }),
            bulkLoad: fc.boolean(),
            onThread: fc.boolean(),
          }),
        ),
        async ({ before, after, searches: texts, limit, bulkLoad, onThread }) => {
          const writer = onThread ? threaded : store;
          const generation = await store.createGeneration(schema.projection, 2);
          const target: ReadModelTarget = { projection: schema.projection, generation };
          // A rebuild loads its documents before the indexes exist, and indexes them at the end.
          await writer.prepare(schema, generation, { indexes: !bulkLoad });
          await writer.commit(target, { expected: 0n, position: 1n, changes: before.map(entry) });
          await writer.prepare(schema, generation);
          await store.prepare(schema, generation);

          const current = new Map(before.map((p) => [`${p.firmId}/${p.userId}`, p]));
          // One change per document and commit, the last one, as the engine sends them.
          const changes = new Map<string, DocumentChange>();
          for (const [index, renamed, removed] of after) {
            const person = before.length ? before[index % before.length] : undefined;
            if (!person) break;
            const id = `${person.firmId}/${person.userId}`;
            if (removed) {
              current.delete(id);
              changes.set(id, { collection: 'entries', id, doc: null });
            } else {
              const changed =
                renamed === null ? { ...person, organization: null } : { ...person, name: renamed };
              current.set(id, changed);
              changes.set(id, entry(changed));
            }
          }
          await writer.commit(target, {
            expected: 1n,
            position: 2n,
            changes: [...changes.values()],
          });

          const reader: ReadModelReader = {
            get: (collection, id) => store.get(target, collection, id) as never,
            find: (collection, query) => store.find(target, collection, query) as never,
          };
          const all = [...current.values()];
          for (const search of texts) {
            for (const firmId of FIRMS) {
              expect({ search, firmId, found: await pages(reader, firmId, search, limit) }).toEqual(
                { search, firmId, found: scan(all, firmId, search) },
              );
            }
          }
          await store.dropGeneration(schema, generation);
          await threaded.dropGeneration(schema, generation);
        },
      ),
      { numRuns: 120 },
    );
  });

  it('has FTS5 with the trigram tokenizer in the bundled SQLite', async () => {
    const generation = await store.createGeneration(schema.projection, 2);
    await store.prepare(schema, generation);
    const target = { projection: schema.projection, generation };
    await store.commit(target, {
      expected: 0n,
      position: 1n,
      changes: [entry({ firmId: 'acme', userId: 'u-1', name: 'Anna Strauß', organization: null })],
    });
    const reader: ReadModelReader = {
      get: (collection, id) => store.get(target, collection, id) as never,
      find: (collection, query) => store.find(target, collection, query) as never,
    };
    expect(await pages(reader, 'acme', 'STRAUSS', 10)).toEqual(['u-1']);
    // The index table exists: the search above went through it, not around it.
    const Database = (await import('better-sqlite3')).default;
    const db = new Database(join(dir, 'readmodels.sqlite'), { readonly: true });
    const sql = db
      .prepare("SELECT sql FROM sqlite_master WHERE name LIKE ? AND type = 'table'")
      .pluck()
      .all(`rm_enrolled_users_g${generation}_entries_fts`) as string[];
    db.close();
    expect(sql.join()).toMatch(/USING fts5\(.*tokenize = 'trigram case_sensitive 1'/s);
    await store.dropGeneration(schema, generation);
  });
});
