import Database from 'better-sqlite3';
import { DataKey, KeyStore } from './key-store.port';
import { dataKeyId, newWrappedKey, unwrapKey } from './key-wrapping';

/**
 * Data keys in their own SQLite file. `secure_delete` overwrites a destroyed
 * key's bytes in the database pages, and a checkpoint after each destruction
 * moves that overwrite out of the write-ahead log, so the file keeps no copy.
 */
export class SqliteKeyStore implements KeyStore {
  private readonly db: Database.Database;
  private readonly insert;
  private readonly select;
  private readonly destroy;

  constructor(
    path: string,
    private readonly masterKey: Buffer,
  ) {
    this.db = new Database(path);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = FULL');
    this.db.pragma('busy_timeout = 10000');
    this.db.pragma('secure_delete = ON');
    this.db.exec(`CREATE TABLE IF NOT EXISTS data_keys (
      key_id TEXT PRIMARY KEY,
      firm_id TEXT NOT NULL,
      user_id TEXT NOT NULL,
      generation INTEGER NOT NULL,
      wrapped TEXT NOT NULL,
      created_at TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS data_keys_by_user ON data_keys (firm_id, user_id, generation);`);
    this.insert = this.db.prepare(
      `INSERT OR IGNORE INTO data_keys (key_id, firm_id, user_id, generation, wrapped, created_at)
       VALUES (?, ?, ?, ?, ?, ?)`,
    );
    this.select = this.db.prepare('SELECT wrapped FROM data_keys WHERE key_id = ?');
    this.destroy = this.db.prepare(
      'DELETE FROM data_keys WHERE firm_id = ? AND user_id = ? AND generation < ?',
    );
  }

  dataKeyFor(firmId: string, userId: string, generation: number): Promise<DataKey> {
    return settle(() => this.dataKeyForSync(firmId, userId, generation));
  }

  private dataKeyForSync(firmId: string, userId: string, generation: number): DataKey {
    const keyId = dataKeyId(firmId, userId, generation);
    // The first writer wins; everyone reads back the one key that was stored.
    this.insert.run(
      keyId,
      firmId,
      userId,
      generation,
      newWrappedKey(this.masterKey, keyId),
      new Date().toISOString(),
    );
    const row = this.select.get(keyId) as { wrapped: string };
    return { keyId, key: unwrapKey(this.masterKey, keyId, row.wrapped) };
  }

  dataKey(keyId: string): Promise<Buffer | undefined> {
    return settle(() => {
      const row = this.select.get(keyId) as { wrapped: string } | undefined;
      return row ? unwrapKey(this.masterKey, keyId, row.wrapped) : undefined;
    });
  }

  destroyKeysBelow(firmId: string, userId: string, generation: number): Promise<number> {
    return settle(() => {
      const { changes } = this.destroy.run(firmId, userId, generation);
      if (changes > 0) this.db.pragma('wal_checkpoint(TRUNCATE)');
      return changes;
    });
  }

  close(): Promise<void> {
    if (this.db.open) this.db.close();
    return Promise.resolve();
  }
}

/** The synchronous driver's result or error, as the port's promise. */
function settle<T>(work: () => T): Promise<T> {
  try {
    return Promise.resolve(work());
  } catch (error) {
    return Promise.reject(error as Error);
  }
}
