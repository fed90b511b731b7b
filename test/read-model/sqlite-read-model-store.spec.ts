import Database from 'better-sqlite3';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { SqliteReadModelStore } from '../../src/read-model/sqlite-read-model-store';
import { tempDir } from '../support/harness';
import { readModelStoreContract } from './read-model-store.contract';

readModelStoreContract('SQLite (embedded)', async () => {
  const dir = tempDir('mfa-readmodels-');
  const store = new SqliteReadModelStore(join(dir, 'readmodels.sqlite'));
  return {
    store,
    dispose: async () => {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
});

describe('SQLite read-model tables', () => {
  const schema = {
    projection: 'layout',
    collections: [{ name: 'people', fields: ['firmId'], indexes: [['firmId', 'id']] }],
  };

  it('are rowid tables keyed by a unique id, and a WITHOUT ROWID table of an older generation still serves', async () => {
    const dir = tempDir('mfa-readmodels-layout-');
    const file = join(dir, 'readmodels.sqlite');
    // Generation 1 as versions before this layout created it.
    const old = new Database(file);
    old.exec(
      'CREATE TABLE "rm_layout_g1_people" (id TEXT PRIMARY KEY, doc TEXT NOT NULL, f_firmId) WITHOUT ROWID',
    );
    old.close();
    const store = new SqliteReadModelStore(file, { writerThread: true });
    try {
      for (const generation of [1, 2]) {
        expect(await store.createGeneration('layout', 1)).toBe(generation);
        await store.prepare(schema, generation);
        const target = { projection: 'layout', generation };
        const changes = ['b', 'a', 'c'].map((id) => ({
          collection: 'people',
          id: `acme/${id}`,
          doc: { firmId: 'acme', id },
        }));
        expect(await store.commit(target, { expected: 0n, position: 3n, changes })).toBe(
          'committed',
        );
        expect(
          await store.commit(target, {
            expected: 3n,
            position: 4n,
            changes: [{ collection: 'people', id: 'acme/a', doc: { firmId: 'acme', id: 'a2' } }],
          }),
        ).toBe('committed');
        const found = await store.find(target, 'people', {
          equals: { firmId: 'acme' },
          orderBy: ['id'],
          limit: 10,
        });
        expect(found.map((doc) => doc.id)).toEqual(['a2', 'b', 'c']);
      }
    } finally {
      await store.close();
    }
    const db = new Database(file);
    const sql = (table: string) =>
      db.prepare('SELECT sql FROM sqlite_master WHERE name = ?').pluck().get(table) as string;
    expect(sql('rm_layout_g1_people')).toMatch(/WITHOUT ROWID/);
    expect(sql('rm_layout_g2_people')).not.toMatch(/WITHOUT ROWID/);
    // The id stays unique in the new layout.
    expect(() =>
      db.prepare('INSERT INTO rm_layout_g2_people (id, doc) VALUES (?, ?)').run('acme/a', '{}'),
    ).toThrow(/UNIQUE/);
    db.close();
    rmSync(dir, { recursive: true, force: true });
  });
});
