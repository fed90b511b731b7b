import { MongoClient } from 'mongodb';
import { randomUUID } from 'node:crypto';
import { dataKeyId } from '../../src/crypto/key-wrapping';
import { keyStoreContract } from './key-store.contract';

/*
 * The MongoDB key store runs the same contract when MONGODB_URL names a
 * server (docker-compose.yml brings one), each test in a database of its own.
 * None can run on the CI machines, so there the suite is reported as skipped.
 */
const url = process.env.MONGODB_URL;

if (url) {
  keyStoreContract(`MongoDB at ${url}`, async () => {
    const { MongoKeyStore } = await import('../../src/crypto/mongo-key-store');
    const database = `mfa_keys_contract_${randomUUID().slice(0, 8)}`;
    const client = await new MongoClient(url).connect();
    return {
      open: (masterKey: Buffer, previousMasterKey: Buffer | null = null) =>
        MongoKeyStore.connect(url, masterKey, { previousMasterKey, database }),
      plantUntaggedKey: async (firmId, userId, generation, wrapped) => {
        // A document as the store wrote it before master key check values.
        await client
          .db(database)
          .collection<{ _id: string; [field: string]: unknown }>('data_keys')
          .insertOne({
            _id: dataKeyId(firmId, userId, generation),
            firmId,
            userId,
            generation,
            wrapped,
            createdAt: new Date(),
          });
      },
      dispose: async () => {
        await client.db(database).dropDatabase();
        await client.close();
      },
    };
  });
} else {
  console.warn(
    'MongoDB key store contract SKIPPED: MONGODB_URL is not set (no MongoDB server on this machine). ' +
      "Run `docker compose up -d mongodb` and MONGODB_URL='mongodb://localhost:27017/mfa?replicaSet=rs0&directConnection=true' npm test to run it.",
  );
  describe.skip('MongoDB key store contract (skipped: MONGODB_URL is not set)', () => {
    it('runs against a MongoDB server', () => undefined);
  });
}
