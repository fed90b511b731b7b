import { TEST_MASTER_KEY } from '../support/harness';
import { keyStoreContract } from './key-store.contract';

/*
 * The MongoDB key store runs the same contract when MONGODB_URL names a
 * server (docker-compose.yml brings one). None can run on the CI machines,
 * so there the suite is reported as skipped.
 */
const url = process.env.MONGODB_URL;

if (url) {
  keyStoreContract(`MongoDB at ${url}`, async () => {
    const { MongoKeyStore } = await import('../../src/crypto/mongo-key-store');
    return MongoKeyStore.connect(url, Buffer.from(TEST_MASTER_KEY, 'hex'));
  });
} else {
  console.warn(
    'MongoDB key store contract SKIPPED: MONGODB_URL is not set (no MongoDB server on this machine). ' +
      'Run `docker compose up -d mongodb` and MONGODB_URL=mongodb://localhost:27017/mfa?replicaSet=rs0 npm test to run it.',
  );
  describe.skip('MongoDB key store contract (skipped: MONGODB_URL is not set)', () => {
    it('runs against a MongoDB server', () => undefined);
  });
}
