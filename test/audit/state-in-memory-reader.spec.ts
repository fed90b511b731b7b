import fc from 'fast-check';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { FoldDocuments, InMemoryReadModel } from '../../src/audit/in-memory-read-model';
import type {
  DocumentChange,
  FindQuery,
  IndexValue,
  ReadModelSchema,
  ReadModelTarget,
} from '../../src/read-model/read-model-store.port';
import { SqliteReadModelStore } from '../../src/read-model/sqlite-read-model-store';
import { tempDir } from '../support/harness';

/*
 * The state as of a moment reads its in-memory read models with the
 * dashboards' own queries, so the in-memory `find` must answer what a store's
 * `find` answers (FindQuery): compared with the SQLite store on random
 * documents and queries (filters, search, order, keyset cursor, limit), with
 * values of every kind a field can hold, missing ones included.
 */

const FIELDS = ['a', 'b', 'c', 's'] as const;
const schema: ReadModelSchema = {
  projection: 'reader-property',
  collections: [
    {
      name: 'docs',
      fields: [...FIELDS],
      indexes: [
        ['a', 'b', 'id'],
        ['s', 'id'],
      ],
      search: ['s'],
    },
    { name: 'plain', fields: [], indexes: [] },
  ],
};

// Letters either side of the case and accents, a character above U+E000, one beyond U+FFFF.
const text = fc.string({
  unit: fc.constantFrom('a', 'b', 'B', 'é', 'z', ' ', '\uE000', '\uFFFD', '😀', '1'),
  maxLength: 4,
});
const number = fc.oneof(fc.integer({ min: -3, max: 3 }), fc.constantFrom(0.5, -1.5, 2.25));
const value = fc.oneof(
  text,
  number,
  fc.constant(null),
  fc.boolean(),
  fc.constant(undefined),
  fc.constant({ x: 1 }),
);
const indexValue: fc.Arbitrary<IndexValue> = fc.oneof(text, number, fc.constant(null));

const documents = fc.uniqueArray(
  fc.record({
    id: text.map((t) => `id-${t}`),
    a: value,
    b: value,
    c: value,
    // The searched field holds text or nothing, as the dashboards' search keys do.
    s: fc.oneof(text, fc.constant(null), fc.constant(undefined)),
  }),
  { selector: (doc) => doc.id, maxLength: 25 },
);

const query = (ids: string[]): fc.Arbitrary<FindQuery> =>
  fc
    .record({
      equals: fc.option(
        fc.dictionary(
          fc.constantFrom(...FIELDS, 'id'),
          fc.oneof(indexValue, fc.constantFrom(...ids)),
          {
            maxKeys: 2,
          },
        ),
        { nil: undefined },
      ),
      // On text fields only: the port defines `contains` on text (MongoDB's $regex never
      // matches a number; SQLite's instr matches a number's text form, "1.0").
      contains: fc.option(fc.record({ fields: fc.constant(['s']), text }), { nil: undefined }),
      orderBy: fc
        .subarray([...FIELDS], { maxLength: 3 })
        .chain((fields) => fc.shuffledSubarray(fields, { minLength: fields.length }))
        .map((fields) => [...fields, 'id']),
      limit: fc.integer({ min: 0, max: 30 }),
    })
    .chain((base) =>
      fc
        .option(
          fc.tuple(
            ...base.orderBy.map((field) =>
              field === 'id' ? fc.constantFrom('', ...ids) : indexValue,
            ),
          ),
          { nil: undefined },
        )
        .map((after) => ({
          ...base,
          ...(base.equals ? {} : { equals: undefined }),
          ...(after ? { after } : {}),
        })),
    )
    .map(({ equals, contains, ...rest }) => ({
      ...rest,
      ...(equals ? { equals } : {}),
      ...(contains ? { contains } : {}),
    }));

describe('the in-memory read model of the state as of a moment', () => {
  let dir: string;
  let store: SqliteReadModelStore;
  let generation = 0;

  beforeAll(() => {
    dir = tempDir('mfa-reader-');
    store = new SqliteReadModelStore(join(dir, 'readmodels.sqlite'));
  });
  afterAll(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function loaded(docs: Array<Record<string, unknown>>) {
    generation = await store.createGeneration(schema.projection, 1);
    const target: ReadModelTarget = { projection: schema.projection, generation };
    await store.prepare(schema, generation);
    const changes: DocumentChange[] = docs.map(({ id, ...doc }) => ({
      collection: 'docs',
      id: id as string,
      // JSON drops undefined fields: a missing field, as a projection leaves it.
      doc: JSON.parse(JSON.stringify(doc)),
    }));
    await store.commit(target, { expected: 0n, position: 1n, changes });
    const memory = new FoldDocuments();
    memory.apply(changes);
    return { target, reader: new InMemoryReadModel(memory, schema.collections) };
  }

  it('finds what the SQLite store finds, for any documents and query', async () => {
    await fc.assert(
      fc.asyncProperty(
        documents.chain((docs) =>
          fc.tuple(
            fc.constant(docs),
            fc.array(query(docs.map((d) => d.id).concat('id-x')), { minLength: 1, maxLength: 8 }),
          ),
        ),
        async ([docs, queries]) => {
          const { target, reader } = await loaded(docs);
          for (const q of queries) {
            const expected = await store.find(target, 'docs', q);
            expect({ query: q, found: await reader.find('docs', q) }).toEqual({
              query: q,
              found: expected,
            });
          }
          for (const { id } of docs) {
            expect(await reader.get('docs', id)).toEqual(await store.get(target, 'docs', id));
          }
          expect(await reader.get('docs', 'no-such-id')).toBeUndefined();
        },
      ),
      { numRuns: 150 },
    );
  });

  it('refuses a field that is not indexed, as the stores do', async () => {
    const { target, reader } = await loaded([{ id: 'id-1', a: 1 }]);
    const bad: FindQuery = { equals: { name: 'x' }, orderBy: ['id'], limit: 1 };
    expect(() => store.find(target, 'docs', bad)).toThrow(/not an indexed field/);
    expect(() => reader.find('docs', bad)).toThrow(/not an indexed field/);
    expect(() => reader.find('plain', { orderBy: ['a', 'id'], limit: 1 })).toThrow(
      /not an indexed field/,
    );
  });
});
