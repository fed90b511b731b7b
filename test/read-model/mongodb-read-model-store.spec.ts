import { randomUUID } from 'node:crypto';
import { MongoReadModelStore } from '../../src/read-model/mongodb-read-model-store';
import { readModelStoreContract } from './read-model-store.contract';

/*
 * The production adapter runs the same contract against a real server when
 * MONGODB_URL names one (docker-compose.yml brings MongoDB). No MongoDB can
 * run on the CI machines, so there the suite is reported as skipped.
 */
const url = process.env.MONGODB_URL;

if (url) {
  readModelStoreContract(`MongoDB at ${url}`, async () => {
    const store = await MongoReadModelStore.connect(
      url,
      `mfa_contract_${randomUUID().slice(0, 8)}`,
    );
    return {
      store,
      dispose: async () => {
        await store.dropDatabase();
        await store.close();
      },
    };
  });
} else {
  console.warn(
    'MongoDB read-model store contract SKIPPED: MONGODB_URL is not set (no MongoDB server on this machine). ' +
      "Run `docker compose up -d mongodb` and MONGODB_URL='mongodb://localhost:27017/mfa?replicaSet=rs0&directConnection=true' npm test to run it.",
  );
  describe.skip('MongoDB read-model store contract (skipped: MONGODB_URL is not set)', () => {
    it('runs against a MongoDB server', () => undefined);
  });
}
