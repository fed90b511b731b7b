import Database from 'better-sqlite3';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { SqliteIdempotencyStore } from '../../src/http/sqlite-idempotency-store';
import { tempDir } from '../support/harness';
import { idempotencyStoreContract } from './idempotency-store.contract';

idempotencyStoreContract('SQLite (DATA_DIR/state.sqlite)', (timings) => {
  const dir = tempDir('mfa-idem-');
  const path = join(dir, 'state.sqlite');
  const store = new SqliteIdempotencyStore(path, timings);
  return Promise.resolve({
    store,
    // Another instance on the same data folder: its own connection to the same file.
    openAnother: () => Promise.resolve(new SqliteIdempotencyStore(path, timings)),
    dispose: async () => {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  });
});

describe('SQLite idempotency store specifics', () => {
  let dir: string;
  beforeEach(() => (dir = tempDir('mfa-idem-')));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('keeps the answers an older version stored, with their remaining retention', async () => {
    const path = join(dir, 'state.sqlite');
    const old = new Database(path);
    old.exec(`CREATE TABLE idempotency_keys (
      scope TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, status INTEGER NOT NULL,
      content_type TEXT NOT NULL, body TEXT NOT NULL, created_at INTEGER NOT NULL
    ) WITHOUT ROWID`);
    const now = Date.now();
    const insert = old.prepare('INSERT INTO idempotency_keys VALUES (?, ?, ?, ?, ?, ?)');
    insert.run('recent', 'fp-r', 200, 'application/json', '{"position":"7"}', now - 60_000);
    insert.run('stale', 'fp-s', 200, 'application/json', '{"position":"3"}', now - 25 * 3600_000);
    old.close();

    let clock = now;
    const timings = { retentionMs: 24 * 3600_000, claimTimeoutMs: 30_000, now: () => clock };
    const store = new SqliteIdempotencyStore(path, timings);
    try {
      expect(await store.claim('recent', 'fp-r')).toEqual({
        state: 'answered',
        record: {
          fingerprint: 'fp-r',
          status: 200,
          contentType: 'application/json',
          body: { position: '7' },
        },
      });
      expect((await store.claim('stale', 'fp-s')).state).toBe('claimed');
      clock += 24 * 3600_000 - 60_000;
      expect((await store.claim('recent', 'fp-r')).state).toBe('claimed');
    } finally {
      await store.close();
    }
  });
});
