import { Logger } from '@nestjs/common';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { IdempotencyStore } from '../http/idempotency-store.port';
import { SqliteIdempotencyStore } from '../http/sqlite-idempotency-store';
import { AppConfig } from '../config/config';
import { KeyStore } from '../crypto/key-store.port';
import { SqliteKeyStore } from '../crypto/sqlite-key-store';
import { ChainingEventStore } from '../event-store/chaining-event-store';
import { EventStore } from '../event-store/event-store.port';
import { SqliteEventStore } from '../event-store/sqlite-event-store';
import {
  MongoRateLimitStore,
  RateLimitStore,
  SqliteRateLimitStore,
} from '../http/rate-limit-store';
import { openReadModelStore } from '../read-model/open-read-model-store';
import { Clock, systemClock } from '../shared/clock';
import type { Infrastructure } from './infrastructure.module';

/** Opens the stores the configuration names: SQLite files under DATA_DIR unless URLs say otherwise. */
export async function openInfrastructure(
  config: AppConfig,
  clock: Clock = systemClock,
): Promise<Infrastructure> {
  mkdirSync(config.dataDir, { recursive: true });
  // First: a master key that cannot open the stored keys stops the start before anything else opens.
  const keyStore = await openKeyStore(config);
  const eventStore = await openEventStore(config);
  const readModelStore = await openReadModelStore(config);
  const idempotencyStore = await openIdempotencyStore(config);
  const rateLimitStore = await openRateLimitStore(config);
  return {
    config,
    eventStore,
    readModelStore,
    idempotencyStore,
    keyStore,
    rateLimitStore,
    clock,
    close: async () => {
      await eventStore.close();
      await readModelStore.close();
      await keyStore.close();
      await idempotencyStore.close();
      await rateLimitStore.close();
    },
  };
}

/**
 * The event log. Either way every appended event is chained to its stream's
 * predecessor (tamper evidence, ADR 0017): SQLite does it in its write
 * transaction, which holds the stream's head; KurrentDB goes behind the
 * decorator that reads the predecessor and appends at exactly its revision.
 */
async function openEventStore(config: AppConfig): Promise<EventStore> {
  if (!config.eventStoreUrl) return new SqliteEventStore(join(config.dataDir, 'events.sqlite'));
  // Loaded only when configured: the gRPC client is not needed by the embedded default.
  const { KurrentDbEventStore } = await import('../event-store/kurrentdb-event-store');
  return new ChainingEventStore(new KurrentDbEventStore(config.eventStoreUrl));
}

/**
 * The keys that seal TOTP secrets: a SQLite file of their own, or MongoDB with the read models.
 * Opened only once the master key is proven to open every stored key (a rotation re-wraps them
 * first); otherwise a ConfigError naming MFA_MASTER_KEY, rather than a 500 on every TOTP check.
 */
async function openKeyStore(config: AppConfig): Promise<KeyStore> {
  let keyStore: KeyStore;
  if (!config.mongodbUrl) {
    keyStore = new SqliteKeyStore(
      join(config.dataDir, 'keys.sqlite'),
      config.masterKey,
      config.previousMasterKey,
    );
  } else {
    const { MongoKeyStore } = await import('../crypto/mongo-key-store');
    keyStore = await MongoKeyStore.connect(config.mongodbUrl, config.masterKey, {
      previousMasterKey: config.previousMasterKey,
    });
  }
  try {
    const adoption = await keyStore.adoptMasterKey();
    if (adoption.previousConfigured) {
      new Logger('MasterKey').warn(
        `${adoption.rewrapped} data keys re-wrapped from MFA_MASTER_KEY_PREVIOUS to MFA_MASTER_KEY by this process; all ${adoption.dataKeys} now open with MFA_MASTER_KEY. Remove MFA_MASTER_KEY_PREVIOUS once every instance runs with the new key.`,
      );
    }
  } catch (error) {
    await keyStore.close();
    throw error;
  }
  return keyStore;
}

/**
 * Idempotency keys where every instance of the deployment finds them: MongoDB
 * with the read models when MONGODB_URL is set, else DATA_DIR/state.sqlite,
 * which the instances on one data folder share.
 */
async function openIdempotencyStore(config: AppConfig): Promise<IdempotencyStore> {
  if (!config.mongodbUrl) {
    return new SqliteIdempotencyStore(join(config.dataDir, 'state.sqlite'));
  }
  const { MongoIdempotencyStore } = await import('../http/mongodb-idempotency-store');
  return MongoIdempotencyStore.connect(config.mongodbUrl);
}

/** Rate-limit counters where every instance sees them: state.sqlite, or MongoDB (ADR 0016). */
async function openRateLimitStore(config: AppConfig): Promise<RateLimitStore> {
  if (!config.mongodbUrl) return new SqliteRateLimitStore(join(config.dataDir, 'state.sqlite'));
  return MongoRateLimitStore.connect(config.mongodbUrl);
}
