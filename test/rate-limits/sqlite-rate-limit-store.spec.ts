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

describe('SQLite rate-limit store, closed', () => {
  // A timer left behind fired on the closed database minutes later, in a test worker that had
  // gone on to other files, and failed whichever suite was running then.
  it('leaves no timer behind', async () => {
    jest.useFakeTimers();
    try {
      const store = new SqliteRateLimitStore(join(dataDir, 'closed.sqlite'));
      store.counter('any', { points: 1, windowSeconds: 60 });
      await store.close();
      expect(jest.getTimerCount()).toBe(0);
      jest.advanceTimersByTime(3_600_000);
    } finally {
      jest.useRealTimers();
    }
  });
});
