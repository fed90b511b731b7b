import { rateLimitStoreContract } from './rate-limit-store.contract';

/*
 * The MongoDB rate-limit store runs the same contract when MONGODB_URL names a
 * server (docker-compose.yml brings one). None can run on the CI machines,
 * so there the suite is reported as skipped.
 */
const url = process.env.MONGODB_URL;

if (url) {
  rateLimitStoreContract(`MongoDB at ${url}`, async () => {
    const { MongoRateLimitStore } = await import('../../src/http/rate-limit-store');
    return MongoRateLimitStore.connect(url);
  });
} else {
  console.warn(
    'MongoDB rate-limit store contract SKIPPED: MONGODB_URL is not set (no MongoDB server on this machine). ' +
      'Run `docker compose up -d mongodb` and MONGODB_URL=mongodb://localhost:27017/mfa?replicaSet=rs0 npm test to run it.',
  );
  describe.skip('MongoDB rate-limit store contract (skipped: MONGODB_URL is not set)', () => {
    it('runs against a MongoDB server', () => undefined);
  });
}
