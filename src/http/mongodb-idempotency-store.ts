import { randomUUID } from 'node:crypto';
import { Collection, Db, MongoClient, MongoServerError } from 'mongodb';
import {
  DEFAULT_IDEMPOTENCY_TIMINGS,
  IdempotencyClaim,
  IdempotencyRecord,
  IdempotencyStore,
  IdempotencyTimings,
} from './idempotency-store.port';

interface ScopeDocument {
  _id: string;
  fingerprint: string;
  claimId: string | null;
  /** The body as JSON text: an answer's keys may be anything, a document's may not start with `$`. */
  answer: { status: number; contentType: string; body: string } | null;
  /** When the claim or the answer dies; the TTL index deletes the document some time after. */
  expiresAt: Date;
}

const DUPLICATE_KEY = 11000;
const isDuplicateKey = (error: unknown) =>
  error instanceof MongoServerError && error.code === DUPLICATE_KEY;

/**
 * Idempotency scopes in the `idempotency_scopes` collection, one document per
 * scope (`_id`), shared by every instance that uses the same MongoDB. A claim
 * is one conditional upsert: it updates the document only if it is dead, and
 * otherwise tries to insert it, which the unique `_id` refuses while another
 * claim or an answer is alive (E11000). A TTL index on `expiresAt` removes dead
 * documents; reads never rely on it (it runs once a minute), they compare
 * `expiresAt` with the store's clock.
 */
export class MongoIdempotencyStore implements IdempotencyStore {
  private constructor(
    private readonly client: MongoClient,
    private readonly db: Db,
    private readonly scopes: Collection<ScopeDocument>,
    private readonly timings: IdempotencyTimings,
  ) {}

  /** Connects to the database the URL names and creates the TTL index. */
  static connect(
    url: string,
    timings: IdempotencyTimings = DEFAULT_IDEMPOTENCY_TIMINGS,
  ): Promise<MongoIdempotencyStore> {
    return MongoIdempotencyStore.open(url, undefined, timings);
  }

  /** For tests: a database of their own, dropped with `dropDatabase`. */
  static connectTo(
    url: string,
    database: string,
    timings: IdempotencyTimings = DEFAULT_IDEMPOTENCY_TIMINGS,
  ): Promise<MongoIdempotencyStore> {
    return MongoIdempotencyStore.open(url, database, timings);
  }

  private static async open(
    url: string,
    database: string | undefined,
    timings: IdempotencyTimings,
  ): Promise<MongoIdempotencyStore> {
    const client = new MongoClient(url, { serverSelectionTimeoutMS: 10_000 });
    await client.connect();
    const db = client.db(database);
    const scopes = db.collection<ScopeDocument>('idempotency_scopes');
    await scopes.createIndex({ expiresAt: 1 }, { expireAfterSeconds: 0 });
    return new MongoIdempotencyStore(client, db, scopes, timings);
  }

  async claim(scope: string, fingerprint: string): Promise<IdempotencyClaim> {
    const now = this.timings.now();
    // A lost race is retried at most twice: the holder's document died between two reads.
    for (let attempt = 0; attempt < 3; attempt++) {
      const claimId = randomUUID();
      try {
        await this.scopes.updateOne(
          { _id: scope, expiresAt: { $lte: new Date(now) } },
          {
            $set: {
              fingerprint,
              claimId,
              answer: null,
              expiresAt: new Date(now + this.timings.claimTimeoutMs),
            },
          },
          { upsert: true },
        );
        return { state: 'claimed', claimId };
      } catch (error) {
        if (!isDuplicateKey(error)) throw error;
      }
      const held = await this.scopes.findOne({ _id: scope });
      if (held && held.expiresAt.getTime() > now) {
        return held.answer
          ? { state: 'answered', record: recordOf(held) }
          : { state: 'in-progress', fingerprint: held.fingerprint };
      }
    }
    throw new Error(`Idempotency scope ${scope} could not be claimed after 3 attempts`);
  }

  async complete(scope: string, record: IdempotencyRecord): Promise<IdempotencyRecord> {
    const now = this.timings.now();
    // A lost race is retried at most twice: the kept answer died between two reads.
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        // A claim (this run's, or the one that took over its expired claim) or a dead answer
        // gives way; a live answer does not match, and the upsert's insert then hits the unique
        // `_id` (E11000).
        const kept = await this.scopes.findOneAndUpdate(
          { _id: scope, $or: [{ answer: null }, { expiresAt: { $lte: new Date(now) } }] },
          {
            $set: {
              fingerprint: record.fingerprint,
              claimId: null,
              answer: {
                status: record.status,
                contentType: record.contentType,
                body: JSON.stringify(record.body),
              },
              expiresAt: new Date(now + this.timings.retentionMs),
            },
          },
          { upsert: true, returnDocument: 'after' },
        );
        if (kept) return recordOf(kept);
      } catch (error) {
        if (!isDuplicateKey(error)) throw error;
      }
      // An answer is kept already: the first one stays, and is the one to answer.
      const held = await this.scopes.findOne({ _id: scope });
      if (held?.answer && held.expiresAt.getTime() > now) return recordOf(held);
    }
    throw new Error(`Idempotency scope ${scope} could not be answered after 3 attempts`);
  }

  async release(scope: string, claimId: string): Promise<void> {
    await this.scopes.deleteOne({ _id: scope, claimId, answer: null });
  }

  /** For tests. */
  async dropDatabase(): Promise<void> {
    await this.db.dropDatabase();
  }

  async close(): Promise<void> {
    await this.client.close();
  }
}

/** The kept answer of a scope document that holds one. */
function recordOf(document: ScopeDocument): IdempotencyRecord {
  if (!document.answer) throw new Error(`Idempotency scope ${document._id} holds no answer`);
  return {
    fingerprint: document.fingerprint,
    status: document.answer.status,
    contentType: document.answer.contentType,
    body: JSON.parse(document.answer.body) as unknown,
  };
}
