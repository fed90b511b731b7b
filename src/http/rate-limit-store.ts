import Database from 'better-sqlite3';
import type { MongoClient } from 'mongodb';
import {
  RateLimiterMemory,
  RateLimiterMongo,
  RateLimiterRes,
  RateLimiterSQLite,
  RateLimiterStoreAbstract,
} from 'rate-limiter-flexible';
import type { RateLimit } from '../config/config';

/** The outcome of counting one request (or one failure) against a limit. */
export interface RateDecision {
  allowed: boolean;
  /** Whole seconds until the window that refused this ends (at least 1); 0 when allowed. */
  retryAfterSeconds: number;
}

/** One kind of limit: a count per key in fixed windows, shared by every instance of the service. */
export interface RateCounter {
  /** Counts one against `key`; refused once the count in the current window passes the limit. */
  take(key: string): Promise<RateDecision>;
  /** Gives back one taken earlier from `key` (a reserved failure that did not happen). */
  giveBack(key: string): Promise<void>;
}

/**
 * Port: where rate-limit counters live. Every instance of the service must see
 * the same counts, or N instances would allow N times the limit: the embedded
 * default keeps them in `DATA_DIR/state.sqlite` (which instances on one data
 * folder share), MongoDB when `MONGODB_URL` is set (ADR 0016).
 */
export interface RateLimitStore {
  /**
   * A counter named `name` (its keys do not meet other counters' keys) for
   * `limit`. `blockInMemory`: once a key is over the limit, this instance
   * refuses it without asking the store until the window ends (for counters
   * that are never given back; it keeps a flood off the store).
   */
  counter(name: string, limit: RateLimit, options?: { blockInMemory?: boolean }): RateCounter;
  close(): Promise<void>;
}

export const RATE_LIMIT_STORE = Symbol('RateLimitStore');

/** rate-limiter-flexible's limiters (atomic upserts in the store) behind the RateCounter port. */
class FlexibleCounter implements RateCounter {
  constructor(private readonly limiter: RateLimiterStoreAbstract) {}

  async take(key: string): Promise<RateDecision> {
    try {
      await this.limiter.consume(key);
      return { allowed: true, retryAfterSeconds: 0 };
    } catch (refusal) {
      // The library rejects with a RateLimiterRes when over the limit, with an Error when
      // both the store and the in-memory insurance failed.
      if (!(refusal instanceof RateLimiterRes)) throw refusal;
      return {
        allowed: false,
        retryAfterSeconds: Math.max(1, Math.ceil(refusal.msBeforeNext / 1000)),
      };
    }
  }

  async giveBack(key: string): Promise<void> {
    await this.limiter.reward(key, 1);
  }
}

type LimiterFactory = (options: {
  keyPrefix: string;
  points: number;
  duration: number;
  inMemoryBlockOnConsumed?: number;
  insuranceLimiter: RateLimiterMemory;
}) => RateLimiterStoreAbstract;

function counterOn(
  make: LimiterFactory,
  name: string,
  limit: RateLimit,
  options: { blockInMemory?: boolean },
): RateCounter {
  const shape = { keyPrefix: name, points: limit.points, duration: limit.windowSeconds };
  return new FlexibleCounter(
    make({
      ...shape,
      ...(options.blockInMemory ? { inMemoryBlockOnConsumed: limit.points + 1 } : {}),
      // Should the store fail (a locked file, a lost MongoDB primary), each instance goes on
      // counting in its own memory rather than letting every request through or refusing all.
      insuranceLimiter: new RateLimiterMemory(shape),
    }),
  );
}

const TABLE = 'rate_limits';

/**
 * Counters in `state.sqlite`, on a connection of their own with
 * `synchronous=NORMAL`: in WAL mode that commits without an fsync (a crash may
 * forget the last counts, which only forgives a few requests) and never
 * corrupts the file. The idempotency keys in the same file keep their own
 * connection with `synchronous=FULL`.
 */
export class SqliteRateLimitStore implements RateLimitStore {
  private readonly db: Database.Database;
  private readonly cleaner: NodeJS.Timeout;

  constructor(file: string) {
    this.db = new Database(file);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma('busy_timeout = 10000');
    // rate-limiter-flexible's own table layout, created here so it exists before the first count.
    this.db.exec(
      `CREATE TABLE IF NOT EXISTS ${TABLE} (key TEXT PRIMARY KEY, points INTEGER NOT NULL DEFAULT 0, expire INTEGER)`,
    );
    // Windows that ended over an hour ago are deleted every five minutes. Our own timer rather
    // than the library's (clearExpiredByTimeout): that one cannot be stopped, and fired on a
    // closed database in a process that went on (a test worker).
    const purge = this.db.prepare(`DELETE FROM ${TABLE} WHERE expire < ?`);
    this.cleaner = setInterval(() => {
      try {
        purge.run(Date.now() - 3_600_000);
      } catch {
        // A busy or closing file: the next round deletes them.
      }
    }, 300_000);
    this.cleaner.unref();
  }

  counter(name: string, limit: RateLimit, options: { blockInMemory?: boolean } = {}): RateCounter {
    return counterOn(
      (shape) =>
        new RateLimiterSQLite({
          ...shape,
          storeClient: this.db,
          storeType: 'better-sqlite3',
          tableName: TABLE,
          tableCreated: true,
        }),
      name,
      limit,
      options,
    );
  }

  close(): Promise<void> {
    clearInterval(this.cleaner);
    this.db.close();
    return Promise.resolve();
  }
}

/**
 * Counters in the MongoDB database of `MONGODB_URL`, collection `rate_limits`
 * (a TTL index on `expire` deletes ended windows; one unique key per counter
 * and key).
 */
export class MongoRateLimitStore implements RateLimitStore {
  private constructor(private readonly client: MongoClient) {}

  static async connect(url: string): Promise<MongoRateLimitStore> {
    const { MongoClient } = await import('mongodb');
    const client = new MongoClient(url, { serverSelectionTimeoutMS: 10_000 });
    await client.connect();
    return new MongoRateLimitStore(client);
  }

  counter(name: string, limit: RateLimit, options: { blockInMemory?: boolean } = {}): RateCounter {
    return counterOn(
      (shape) =>
        new RateLimiterMongo({ ...shape, storeClient: this.client.db(), tableName: TABLE }),
      name,
      limit,
      options,
    );
  }

  async close(): Promise<void> {
    await this.client.close();
  }
}
