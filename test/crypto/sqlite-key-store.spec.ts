import Database from 'better-sqlite3';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { SqliteKeyStore } from '../../src/crypto/sqlite-key-store';
import { open, seal } from '../../src/crypto/secret-box';
import { TEST_MASTER_KEY, tempDir } from '../support/harness';
import { keyStoreContract } from './key-store.contract';

const masterKey = Buffer.from(TEST_MASTER_KEY, 'hex');
const dir = tempDir('mfa-keys-');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

keyStoreContract('SQLite', () =>
  Promise.resolve(new SqliteKeyStore(join(dir, 'contract.sqlite'), masterKey)),
);

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
