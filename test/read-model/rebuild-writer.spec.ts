import { join } from 'node:path';
import { rmSync } from 'node:fs';
import { put, Projection } from '../../src/projection-engine/projection';
import { evolveOver, NotLoaded } from '../../src/projection-engine/evolve';
import { RebuildWriter } from '../../src/projection-engine/rebuild-writer';
import type { ReadModelSchema } from '../../src/read-model/read-model-store.port';
import { SqliteReadModelStore } from '../../src/read-model/sqlite-read-model-store';
import { tempDir } from '../support/harness';
import { event } from '../projections/projection-spec';

/*
 * The rebuild's memory bound: which documents leave memory first. A document
 * that had to be read back once (a counter touched every few thousand events)
 * stays while documents never read back can go, so it is not read back again
 * and again, each read waiting for the flush in flight.
 */
const schema: ReadModelSchema = {
  projection: 'bench',
  collections: [
    { name: 'users', fields: [], indexes: [] },
    { name: 'groups', fields: [], indexes: [] },
  ],
};

describe('RebuildWriter memory bound', () => {
  let dir: string;
  let store: SqliteReadModelStore;
  let reads: string[];

  beforeEach(async () => {
    dir = tempDir('mfa-rebuild-writer-');
    store = new SqliteReadModelStore(join(dir, 'readmodels.sqlite'));
    const generation = await store.createGeneration(schema.projection, 1);
    await store.prepare(schema, generation);
    reads = [];
    const get = store.get.bind(store);
    store.get = (target, collection, id) => {
      reads.push(`${collection}/${id}`);
      return get(target, collection, id);
    };
  });
  afterEach(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** One event per new user; every `every`-th one also bumps the group counter. */
  const counting = (every: number): Projection => ({
    name: schema.projection,
    version: 1,
    collections: schema.collections,
    handles: ['UserAdded'],
    evolve(added, documents) {
      const i = Number(added.data.i);
      const user = put('users', `u${i}`, { n: i });
      if (i % every !== 0) return [user];
      const group = documents.get<{ count: number }>('groups', 'g');
      return [user, put('groups', 'g', { count: (group?.count ?? 0) + 1 })];
    },
  });

  /** Reads a document as the rebuild does: from memory, or loaded back once dropped. */
  async function read(writer: RebuildWriter, collection: string, id: string) {
    for (;;) {
      try {
        return writer.get(collection, id);
      } catch (error) {
        if (!(error instanceof NotLoaded)) throw error;
        await writer.load(collection, id);
      }
    }
  }

  async function run(maxDocuments: number, users: number, every: number) {
    const writer = new RebuildWriter(
      store,
      { projection: schema.projection, generation: 1 },
      schema.collections,
      { maxDocuments, expectedDocuments: users },
    );
    const projection = counting(every);
    let position = 0n;
    for (let i = 0; i < users; i++) {
      const evolved = await evolveOver(projection, event('UserAdded', { i }), writer);
      if (!('changes' in evolved)) throw new Error(evolved.reason);
      writer.apply(evolved.changes);
      position++;
      if (writer.pending >= 5) await writer.flush(position);
      else if (writer.size > maxDocuments) writer.dropOldest();
    }
    await writer.flush(position);
    await writer.settle();
    return writer;
  }

  it('reads a rarely touched counter back once, not every time it was dropped', async () => {
    await run(20, 2_000, 50);
    expect(reads.filter((read) => read === 'groups/g')).toHaveLength(1);
    const group = await store.get({ projection: 'bench', generation: 1 }, 'groups', 'g');
    expect(group).toEqual({ count: 40 });
  });

  it('still drops documents read back once nothing else is left to drop', async () => {
    const writer = new RebuildWriter(
      store,
      { projection: schema.projection, generation: 1 },
      schema.collections,
      { maxDocuments: 4, expectedDocuments: 100 },
    );
    writer.apply(Array.from({ length: 20 }, (_, i) => put('users', `u${i}`, { n: i })));
    await writer.flush(1n);
    await writer.settle();
    expect(writer.size).toBeLessThanOrEqual(2);
    for (let i = 0; i < 20; i++) expect(await read(writer, 'users', `u${i}`)).toEqual({ n: i });
    expect(reads.filter((read) => read.startsWith('users/')).length).toBeGreaterThanOrEqual(18);
    // Every document held was read back: they are all that is left to drop.
    expect(writer.size).toBeGreaterThan(4);
    writer.dropOldest();
    expect(writer.size).toBeLessThanOrEqual(2);
    expect(await read(writer, 'users', 'u7')).toEqual({ n: 7 });
  });
});
