import { join } from 'node:path';
import type { AppConfig } from '../config/config';
import type { ReadModelStore } from './read-model-store.port';
import { SqliteReadModelStore } from './sqlite-read-model-store';

/**
 * Read models and checkpoints: readmodels.sqlite in DATA_DIR, or MongoDB when
 * MONGODB_URL is set. Apart from app.ts so that the projections CLI opens it
 * without loading the HTTP stack. `writerThread`: SQLite commits run beside
 * the caller (for rebuilds; see SqliteReadModelStore).
 */
export async function openReadModelStore(
  config: AppConfig,
  options: { writerThread?: boolean } = {},
): Promise<ReadModelStore> {
  if (!config.mongodbUrl) {
    return new SqliteReadModelStore(join(config.dataDir, 'readmodels.sqlite'), options);
  }
  // Loaded only when configured, like the KurrentDB client.
  const { MongoReadModelStore } = await import('./mongodb-read-model-store');
  return MongoReadModelStore.connect(config.mongodbUrl);
}
