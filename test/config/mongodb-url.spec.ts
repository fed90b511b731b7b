import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { openInfrastructure } from '../../src/infrastructure/open-infrastructure';
import { MongoIdempotencyStore } from '../../src/http/mongodb-idempotency-store';
import { SqliteIdempotencyStore } from '../../src/http/sqlite-idempotency-store';
import { loadConfig } from '../../src/config/config';
import { TEST_JWT_SECRET, TEST_MASTER_KEY, tempDir, testConfig } from '../support/harness';

/*
 * Issue 11 item 5: with MONGODB_URL set, idempotency keys live in MongoDB
 * with the read models and the data keys, and the start-up no longer warns
 * that the variable is "not used yet".
 */
describe('MONGODB_URL', () => {
  const dataDir = tempDir('mfa-mongo-config-');
  afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

  it('is used: no warning says otherwise', () => {
    const { warnings } = loadConfig({
      DATA_DIR: dataDir,
      MFA_JWT_SECRET: TEST_JWT_SECRET,
      MFA_MASTER_KEY: TEST_MASTER_KEY,
      MONGODB_URL: 'mongodb://db.internal:27017/mfa',
    });
    expect(warnings).toEqual([]);
  });

  it('unset: idempotency keys in DATA_DIR/state.sqlite', async () => {
    const infrastructure = await openInfrastructure(testConfig(dataDir));
    try {
      expect(infrastructure.idempotencyStore).toBeInstanceOf(SqliteIdempotencyStore);
      expect(existsSync(join(dataDir, 'state.sqlite'))).toBe(true);
    } finally {
      await infrastructure.close();
    }
  });

  const url = process.env.MONGODB_URL;
  (url ? it : it.skip)(
    `set: idempotency keys in MongoDB, no state.sqlite${url ? '' : ' (skipped: MONGODB_URL is not set)'}`,
    async () => {
      const dir = tempDir('mfa-mongo-config-');
      const infrastructure = await openInfrastructure(testConfig(dir, { MONGODB_URL: url! }));
      try {
        expect(infrastructure.idempotencyStore).toBeInstanceOf(MongoIdempotencyStore);
        expect(existsSync(join(dir, 'state.sqlite'))).toBe(false);
      } finally {
        await infrastructure.close();
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );
  if (!url) {
    console.warn('MONGODB_URL wiring with a server SKIPPED: MONGODB_URL is not set.');
  }
});
