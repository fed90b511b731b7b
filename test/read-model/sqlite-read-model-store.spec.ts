import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { SqliteReadModelStore } from '../../src/read-model/sqlite-read-model-store';
import { tempDir } from '../support/harness';
import { readModelStoreContract } from './read-model-store.contract';

readModelStoreContract('SQLite (embedded)', async () => {
  const dir = tempDir('mfa-readmodels-');
  const store = new SqliteReadModelStore(join(dir, 'readmodels.sqlite'));
  return {
    store,
    dispose: async () => {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
});
