import { randomBytes } from 'node:crypto';
import { ConfigError } from '../../src/config/config-error';
import type { KeyStore } from '../../src/crypto/key-store.port';
import { dataKeyId, MasterKeyRing } from '../../src/crypto/key-wrapping';
import { open, seal } from '../../src/crypto/secret-box';

/** One empty place to keep data keys (a file, a database), opened by as many stores as a test wants. */
export interface KeyStorage {
  open(masterKey: Buffer, previousMasterKey?: Buffer | null): Promise<KeyStore>;
  /**
   * Writes a data key as stores did before master key check values existed
   * (SQLite: the old table without the column; MongoDB: no `masterKeyCheck`).
   */
  plantUntaggedKey(
    firmId: string,
    userId: string,
    generation: number,
    wrapped: string,
  ): Promise<void>;
  dispose(): Promise<void>;
}

/** The contract both key-store adapters keep (SQLite here, MongoDB when MONGODB_URL is set). */
export function keyStoreContract(name: string, newStorage: () => Promise<KeyStorage>): void {
  const keyA = randomBytes(32);
  const keyB = randomBytes(32);

  describe(`${name} key store`, () => {
    let store: KeyStore;
    let storage: KeyStorage;
    const firm = `firm-${randomBytes(4).toString('hex')}`;

    beforeAll(async () => {
      storage = await newStorage();
      store = await storage.open(keyA);
    });
    afterAll(async () => {
      await store.close();
      await storage.dispose();
    });

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

  describe(`${name} key store and the master key at start`, () => {
    let storage: KeyStorage;
    const opened: KeyStore[] = [];
    beforeEach(async () => (storage = await newStorage()));
    afterEach(async () => {
      await Promise.all(opened.splice(0).map((store) => store.close()));
      await storage.dispose();
    });

    const openStore = async (masterKey: Buffer, previous: Buffer | null = null) => {
      const store = await storage.open(masterKey, previous);
      opened.push(store);
      return store;
    };

    /** Three users' keys under `masterKey`, as a first run would leave them. */
    async function keysUnder(masterKey: Buffer) {
      const store = await openStore(masterKey);
      await store.adoptMasterKey();
      return Promise.all(['ann', 'bob', 'cid'].map((user) => store.dataKeyFor('acme', user, 0)));
    }

    async function expectRefusal(store: KeyStore, message: RegExp) {
      const refusal = await store.adoptMasterKey().then(
        () => undefined,
        (error: unknown) => error,
      );
      expect(refusal).toBeInstanceOf(ConfigError);
      expect(refusal).toMatchObject({ variable: 'MFA_MASTER_KEY' });
      expect((refusal as Error).message).toMatch(message);
    }

    it('an empty store adopts any master key', async () => {
      expect(await (await openStore(keyB)).adoptMasterKey()).toEqual({
        dataKeys: 0,
        rewrapped: 0,
        previousConfigured: false,
      });
    });

    it('refuses a master key that opens none of the stored keys, and changes nothing', async () => {
      const keys = await keysUnder(keyA);
      await expectRefusal(await openStore(keyB), /3 of the 3 data keys .* do not open with it/);
      await expectRefusal(
        await openStore(keyB, randomBytes(32)),
        /3 of the 3 data keys .* neither with it nor with MFA_MASTER_KEY_PREVIOUS/,
      );
      // Nothing was re-wrapped: key A still opens every key, as before.
      const again = await openStore(keyA);
      expect(await again.adoptMasterKey()).toMatchObject({ dataKeys: 3, rewrapped: 0 });
      for (const { keyId, key } of keys) expect(await again.dataKey(keyId)).toEqual(key);
    });

    it('rotates: with the previous key configured, re-wraps every key once; then the new key alone opens them', async () => {
      const keys = await keysUnder(keyA);
      // Two processes start at once on the same store.
      const [one, two] = await Promise.all([openStore(keyB, keyA), openStore(keyB, keyA)]);
      const adoptions = await Promise.all([one.adoptMasterKey(), two.adoptMasterKey()]);
      expect(adoptions.map((adoption) => adoption.rewrapped).sort()).toEqual([0, 3]);
      for (const { keyId, key } of keys) {
        expect(await one.dataKey(keyId)).toEqual(key);
        expect(await two.dataKey(keyId)).toEqual(key);
      }

      const rotated = await openStore(keyB);
      expect(await rotated.adoptMasterKey()).toEqual({
        dataKeys: 3,
        rewrapped: 0,
        previousConfigured: false,
      });
      for (const { keyId, key } of keys) expect(await rotated.dataKey(keyId)).toEqual(key);
      // The same data keys: whatever they sealed before the rotation still opens.
      const sealed = seal(keys[0].key, keys[0].keyId, Buffer.from('SECRET'), 'aad');
      expect(open((await rotated.dataKey(keys[0].keyId))!, sealed, 'aad').toString()).toBe(
        'SECRET',
      );
      // And the old key no longer opens them.
      await expectRefusal(await openStore(keyA), /3 of the 3 data keys/);
    });

    it('a rotation cut short is finished by the next start with the previous key, and refused without it', async () => {
      await keysUnder(keyA);
      // Keys wrapped by B next to keys still wrapped by A: as a rotation interrupted between writes
      // (MongoDB writes key by key) would leave them, or an old instance still running on A.
      const newer = await openStore(keyB, keyA);
      const dan = await newer.dataKeyFor('acme', 'dan', 0);
      await expectRefusal(await openStore(keyB), /3 of the 4 data keys/);
      const finishing = await openStore(keyB, keyA);
      expect(await finishing.adoptMasterKey()).toMatchObject({ dataKeys: 4, rewrapped: 3 });
      expect(await (await openStore(keyB)).adoptMasterKey()).toMatchObject({ rewrapped: 0 });
      expect(await finishing.dataKey(dan.keyId)).toEqual(dan.key);
    });

    it('keys stored before check values: the right key tags them, the previous key re-wraps them, a wrong one is refused', async () => {
      const legacy = new MasterKeyRing(keyA);
      const keyIds = ['eve', 'fay'].map((user) => dataKeyId('acme', user, 0));
      const wrapped = keyIds.map((keyId) => legacy.newWrappedKey(keyId).wrapped);
      await storage.plantUntaggedKey('acme', 'eve', 0, wrapped[0]);
      await storage.plantUntaggedKey('acme', 'fay', 0, wrapped[1]);
      const untagged = await openStore(keyA);
      const before = await Promise.all(keyIds.map((keyId) => untagged.dataKey(keyId)));
      expect(before.map((key) => key?.length)).toEqual([32, 32]);

      await expectRefusal(await openStore(keyB), /2 of the 2 data keys/);
      expect(await (await openStore(keyA)).adoptMasterKey()).toMatchObject({ rewrapped: 0 });
      expect(await (await openStore(keyB, keyA)).adoptMasterKey()).toMatchObject({ rewrapped: 2 });
      const rotated = await openStore(keyB);
      expect(await rotated.adoptMasterKey()).toMatchObject({ dataKeys: 2, rewrapped: 0 });
      for (const [i, keyId] of keyIds.entries())
        expect(await rotated.dataKey(keyId)).toEqual(before[i]);
    });

    it('a process that holds neither master key of a stored key fails on it, and says which', async () => {
      const [ann] = await keysUnder(keyA);
      const stranger = await openStore(keyB);
      await expect(stranger.dataKey(ann.keyId)).rejects.toThrow(
        /master key this process does not hold/,
      );
    });
  });
}
