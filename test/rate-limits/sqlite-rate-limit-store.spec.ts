import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { SqliteRateLimitStore } from '../../src/http/rate-limit-store';
import { tempDir } from '../support/harness';
import { rateLimitStoreContract } from './rate-limit-store.contract';

const dataDir = tempDir();
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

// Two stores on one state.sqlite: two processes on one DATA_DIR.
rateLimitStoreContract('SQLite', () =>
  Promise.resolve(new SqliteRateLimitStore(join(dataDir, 'state.sqlite'))),
);
