import Database from 'better-sqlite3';
import { basename } from 'node:path';
import { DataKey, KeyStore } from './key-store.port';
import {
  dataKeyId,
  MasterKeyAdoption,
  masterKeyMismatch,
  MasterKeyRing,
  WrappedDataKey,
} from './key-wrapping';

interface DataKeyRow {
  key_id: string;
  wrapped: string;
  master_key_check: string | null;
}

/**
 * Data keys in their own SQLite file. `secure_delete` overwrites a destroyed
 * key's bytes in the database pages, and a checkpoint after each destruction
 * moves that overwrite out of the write-ahead log, so the file keeps no copy.
 * Each row carries the check value of the master key that wrapped it.
 */
export class SqliteKeyStore implements KeyStore {
  private readonly db: Database.Database;
  private readonly ring: MasterKeyRing;
  private readonly insert;
  private readonly select;
  private readonly destroy;

  constructor(
    private readonly path: string,
    masterKey: Buffer,
    previousMasterKey: Buffer | null = null,
  ) {
    this.ring = new MasterKeyRing(masterKey, previousMasterKey);
    this.db = new Database(path);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = FULL');
    this.db.pragma('busy_timeout = 10000');
    this.db.pragma('secure_delete = ON');
    // IMMEDIATE: two processes opening one file at once see the schema once, whole.
    this.db
      .transaction(() => {
        this.db.exec(`CREATE TABLE IF NOT EXISTS data_keys (
          key_id TEXT PRIMARY KEY,
          firm_id TEXT NOT NULL,
          user_id TEXT NOT NULL,
          generation INTEGER NOT NULL,
          wrapped TEXT NOT NULL,
          created_at TEXT NOT NULL,
          master_key_check TEXT
        ) WITHOUT ROWID;
        CREATE INDEX IF NOT EXISTS data_keys_by_user ON data_keys (firm_id, user_id, generation);`);
        // Files from before master key check values: the column is added, its values
        // filled in by adoptMasterKey.
        const columns = this.db.pragma('table_info(data_keys)') as Array<{ name: string }>;
        if (!columns.some((column) => column.name === 'master_key_check')) {
          this.db.exec('ALTER TABLE data_keys ADD COLUMN master_key_check TEXT');
        }
      })
      .immediate();
    this.insert = this.db.prepare(
      `INSERT OR IGNORE INTO data_keys
         (key_id, firm_id, user_id, generation, wrapped, created_at, master_key_check)
       VALUES (?, ?, ?, ?, ?, ?, ?)`,
    );
    this.select = this.db.prepare(
      'SELECT key_id, wrapped, master_key_check FROM data_keys WHERE key_id = ?',
    );
    this.destroy = this.db.prepare(
      'DELETE FROM data_keys WHERE firm_id = ? AND user_id = ? AND generation < ?',
    );
  }

  adoptMasterKey(): Promise<MasterKeyAdoption> {
    return settle(() => {
      const { adoption, updated } = this.adoptInOneTransaction();
      // The old wrapping stays in the file's pages until a checkpoint overwrites them
      // (secure_delete clears what is freed): after a rotation away from a key that may
      // have leaked, keep no copy of what it opens.
      if (updated > 0) this.db.pragma('wal_checkpoint(TRUNCATE)');
      return adoption;
    });
  }

  private adoptInOneTransaction(): { adoption: MasterKeyAdoption; updated: number } {
    return (
      // IMMEDIATE: a second process starting at once waits, then finds every key adopted.
      this.db
        .transaction(() => {
          const rows = this.db
            .prepare(
              'SELECT key_id, wrapped, master_key_check FROM data_keys WHERE master_key_check IS NOT ?',
            )
            .all(this.ring.currentCheck) as DataKeyRow[];
          const { count } = this.db.prepare('SELECT count(*) AS count FROM data_keys').get() as {
            count: number;
          };
          const plan = this.ring.plan(rows.map(wrappedOf));
          if (plan.unopenable.length > 0) {
            throw masterKeyMismatch({ ...plan, dataKeys: count }, this.ring, basename(this.path));
          }
          const update = this.db.prepare(
            'UPDATE data_keys SET wrapped = ?, master_key_check = ? WHERE key_id = ?',
          );
          for (const { keyId, to } of plan.updates)
            update.run(to.wrapped, to.masterKeyCheck, keyId);
          const adoption: MasterKeyAdoption = {
            dataKeys: count,
            rewrapped: plan.fromPrevious,
            previousConfigured: this.ring.hasPrevious,
          };
          return { adoption, updated: plan.updates.length };
        })
        .immediate()
    );
  }

  dataKeyFor(firmId: string, userId: string, generation: number): Promise<DataKey> {
    return settle(() => this.dataKeyForSync(firmId, userId, generation));
  }

  private dataKeyForSync(firmId: string, userId: string, generation: number): DataKey {
    const keyId = dataKeyId(firmId, userId, generation);
    const fresh = this.ring.newWrappedKey(keyId);
    // The first writer wins; everyone reads back the one key that was stored.
    this.insert.run(
      keyId,
      firmId,
      userId,
      generation,
      fresh.wrapped,
      new Date().toISOString(),
      fresh.masterKeyCheck,
    );
    const row = this.select.get(keyId) as DataKeyRow;
    return { keyId, key: this.ring.unwrap(wrappedOf(row)) };
  }

  dataKey(keyId: string): Promise<Buffer | undefined> {
    return settle(() => {
      const row = this.select.get(keyId) as DataKeyRow | undefined;
      return row ? this.ring.unwrap(wrappedOf(row)) : undefined;
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

function wrappedOf(row: DataKeyRow): WrappedDataKey {
  return { keyId: row.key_id, wrapped: row.wrapped, masterKeyCheck: row.master_key_check };
}

/** The synchronous driver's result or error, as the port's promise. */
function settle<T>(work: () => T): Promise<T> {
  try {
    return Promise.resolve(work());
  } catch (error) {
    return Promise.reject(error as Error);
  }
}
