import Database from 'better-sqlite3';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { dataKeyId } from '../../src/crypto/key-wrapping';
import { SqliteKeyStore } from '../../src/crypto/sqlite-key-store';
import { open, seal } from '../../src/crypto/secret-box';
import { TEST_MASTER_KEY, tempDir } from '../support/harness';
import { keyStoreContract } from './key-store.contract';

const masterKey = Buffer.from(TEST_MASTER_KEY, 'hex');
const dir = tempDir('mfa-keys-');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let files = 0;
keyStoreContract('SQLite', () => {
  const path = join(dir, `contract-${++files}.sqlite`);
  return Promise.resolve({
    open: (key: Buffer, previous: Buffer | null = null) =>
      Promise.resolve(new SqliteKeyStore(path, key, previous)),
    plantUntaggedKey: (firmId: string, userId: string, generation: number, wrapped: string) => {
      // The table as the store created it before master key check values.
      const db = new Database(path);
      db.exec(`CREATE TABLE IF NOT EXISTS data_keys (
        key_id TEXT PRIMARY KEY,
        firm_id TEXT NOT NULL,
        user_id TEXT NOT NULL,
        generation INTEGER NOT NULL,
        wrapped TEXT NOT NULL,
        created_at TEXT NOT NULL
      ) WITHOUT ROWID;`);
      db.prepare(
        `INSERT INTO data_keys (key_id, firm_id, user_id, generation, wrapped, created_at)
         VALUES (?, ?, ?, ?, ?, ?)`,
      ).run(
        dataKeyId(firmId, userId, generation),
        firmId,
        userId,
        generation,
        wrapped,
        new Date().toISOString(),
      );
      db.close();
      return Promise.resolve();
    },
    dispose: () => Promise.resolve(),
  });
});

describe('SQLite key store specifics', () => {
  it('keeps data keys wrapped by the master key: the file never holds a data key in clear', async () => {
    const path = join(dir, 'wrapped.sqlite');
    const store = new SqliteKeyStore(path, masterKey);
    const { key } = await store.dataKeyFor('acme', 'ann', 0);
    await store.close();
    const file = Buffer.concat(
      ['', '-wal'].flatMap((suffix) => {
        try {
          return [readFileSync(path + suffix)];
        } catch {
          return [];
        }
      }),
    );
    for (const encoding of ['hex', 'base64', 'base64url'] as const) {
      expect(file.includes(Buffer.from(key.toString(encoding)))).toBe(false);
    }
    expect(file.includes(key)).toBe(false);
    // Another master key cannot unwrap it.
    const stranger = new SqliteKeyStore(path, Buffer.alloc(32, 7));
    await expect(stranger.dataKeyFor('acme', 'ann', 0)).rejects.toThrow();
    await stranger.close();
  });

  it('a destroyed key leaves no copy of its wrapped bytes in the file', async () => {
    const path = join(dir, 'shred.sqlite');
    const store = new SqliteKeyStore(path, masterKey);
    const { keyId } = await store.dataKeyFor('acme', 'bob', 0);
    const db = new Database(path, { readonly: true });
    const { wrapped } = db.prepare('SELECT wrapped FROM data_keys WHERE key_id = ?').get(keyId) as {
      wrapped: string;
    };
    db.close();
    const ciphertext = (JSON.parse(wrapped) as { ciphertext: string }).ciphertext;
    await store.destroyKeysBelow('acme', 'bob', 1);
    await store.close();
    const file = readFileSync(path);
    expect(file.includes(Buffer.from(ciphertext))).toBe(false);
  });

  it('after a rotation the file keeps no copy of the keys as the old master key wrapped them', async () => {
    const path = join(dir, 'rotation.sqlite');
    const before = new SqliteKeyStore(path, masterKey);
    const keys = await Promise.all(
      ['ann', 'bob'].map((user) => before.dataKeyFor('acme', user, 0)),
    );
    await before.close();
    const oldCiphertexts = wrappedCiphertexts(path);
    expect(oldCiphertexts).toHaveLength(2);

    const newKey = Buffer.alloc(32, 9);
    const rotated = new SqliteKeyStore(path, newKey, masterKey);
    expect(await rotated.adoptMasterKey()).toMatchObject({ dataKeys: 2, rewrapped: 2 });
    for (const { keyId, key } of keys) expect(await rotated.dataKey(keyId)).toEqual(key);
    await rotated.close();

    const files = Buffer.concat(
      ['', '-wal'].flatMap((suffix) => {
        try {
          return [readFileSync(path + suffix)];
        } catch {
          return [];
        }
      }),
    );
    for (const ciphertext of oldCiphertexts) {
      expect(files.includes(Buffer.from(ciphertext))).toBe(false);
    }
    expect(wrappedCiphertexts(path)).toHaveLength(2);
  });

  it('a sealed secret opens only with its key and its additional data', async () => {
    const store = new SqliteKeyStore(join(dir, 'aad.sqlite'), masterKey);
    const { key, keyId } = await store.dataKeyFor('acme', 'cid', 0);
    const sealed = seal(key, keyId, Buffer.from('JBSWY3DPEHPK3PXP'), 'totp:acme/cid/e1');
    expect(open(key, sealed, 'totp:acme/cid/e1').toString()).toBe('JBSWY3DPEHPK3PXP');
    expect(() => open(key, sealed, 'totp:acme/dan/e1')).toThrow();
    expect(() => open(Buffer.alloc(32), sealed, 'totp:acme/cid/e1')).toThrow();
    await store.close();
  });
});

/** The ciphertexts of the wrapped data keys in a key file, read with a plain connection. */
function wrappedCiphertexts(path: string): string[] {
  const db = new Database(path, { readonly: true });
  const rows = db.prepare('SELECT wrapped FROM data_keys').all() as Array<{ wrapped: string }>;
  db.close();
  return rows.map((row) => (JSON.parse(row.wrapped) as { ciphertext: string }).ciphertext);
}
