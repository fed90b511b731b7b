import { randomBytes } from 'node:crypto';
import type { KeyStore } from '../../src/crypto/key-store.port';
import { open, seal } from '../../src/crypto/secret-box';

/** The contract both key-store adapters keep (SQLite here, MongoDB when MONGODB_URL is set). */
export function keyStoreContract(name: string, open_: () => Promise<KeyStore>): void {
  describe(`${name} key store`, () => {
    let store: KeyStore;
    const firm = `firm-${randomBytes(4).toString('hex')}`;

    beforeAll(async () => (store = await open_()));
    afterAll(() => store.close());

    it('gives a user one 256-bit data key per generation, the same key every time', async () => {
      const first = await store.dataKeyFor(firm, 'ann', 0);
      const again = await store.dataKeyFor(firm, 'ann', 0);
      expect(first.key).toHaveLength(32);
      expect(again).toEqual(first);
      expect(await store.dataKey(first.keyId)).toEqual(first.key);
      const next = await store.dataKeyFor(firm, 'ann', 1);
      expect(next.keyId).not.toBe(first.keyId);
      expect(next.key.equals(first.key)).toBe(false);
      const other = await store.dataKeyFor(firm, 'bob', 0);
      expect(other.key.equals(first.key)).toBe(false);
    });

    it('concurrent first uses agree on one key', async () => {
      const keys = await Promise.all(
        Array.from({ length: 20 }, () => store.dataKeyFor(firm, 'concurrent', 0)),
      );
      for (const key of keys) expect(key.key.equals(keys[0].key)).toBe(true);
    });

    it('destroying the keys below a generation makes what they sealed unreadable, and only that', async () => {
      const old = await store.dataKeyFor(firm, 'cid', 0);
      const current = await store.dataKeyFor(firm, 'cid', 1);
      const sealed = seal(old.key, old.keyId, Buffer.from('SECRET'), 'aad');
      expect(open(old.key, sealed, 'aad').toString()).toBe('SECRET');
      expect(await store.destroyKeysBelow(firm, 'cid', 1)).toBe(1);
      expect(await store.dataKey(old.keyId)).toBeUndefined();
      expect(await store.dataKey(current.keyId)).toEqual(current.key);
      expect(await store.destroyKeysBelow(firm, 'cid', 1)).toBe(0);
    });
  });
}
