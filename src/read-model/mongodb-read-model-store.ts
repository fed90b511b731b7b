import { AnyBulkWriteOperation, Collection, Db, Document, MongoClient } from 'mongodb';

type StoredDocument = Document & { _id: string };
import {
  AcquiredProcessLease,
  DocumentChange,
  FindQuery,
  physicalName,
  ProcessLease,
  ProjectionCheckpoint,
  ProjectionCommit,
  ProjectionFailure,
  ReadModelDocument,
  ReadModelSchema,
  ReadModelStore,
  ReadModelTarget,
  RecordedSkip,
} from './read-model-store.port';

/**
 * A process manager's checkpoint and its lease, in one document: MongoDB
 * changes one document atomically without a replica set, so the
 * compare-and-set of the checkpoint can check the lease in the same write.
 */
interface ProcessDoc {
  _id: string;
  /** Absent before the first checkpoint save. */
  position?: string;
  updatedAt?: string;
  owner?: string;
  term?: number;
  /** On the server's clock ($$NOW), so instances on machines whose clocks differ agree. */
  leaseExpiresAt?: Date;
}

interface CheckpointDoc {
  _id: string;
  projection: string;
  generation: number;
  version: number;
  position: string;
  failure: ProjectionFailure | null;
  updatedAt: string;
  /** The changes of the last commit, kept until every one of them is written (see commit). */
  pending?: DocumentChange[];
}

/**
 * Read models in MongoDB (official driver). A document is stored as itself
 * with `_id` = its id, so indexed fields are top-level fields and every
 * declared index is a real compound index, created at start.
 *
 * Atomic checkpoint without a replica set: a commit first moves the
 * checkpoint *and* stores the whole change set in the checkpoint document
 * (one single-document write, atomic in MongoDB, guarded by the expected
 * position), then writes the documents (absolute values, so writing them
 * twice is harmless), then clears the change set. A crash in between leaves
 * the change set in place; `prepare` writes it again before anything reads.
 * No event is applied twice and none is lost, on a standalone server or a
 * replica set alike. Document keys must not start with `$` or contain `.`.
 */
export class MongoReadModelStore implements ReadModelStore {
  readonly kind = 'mongodb' as const;
  private readonly checkpoints: Collection<CheckpointDoc>;
  private readonly active: Collection<{ _id: string; generation: number }>;
  private readonly skipsCollection: Collection<{
    _id: string;
    projection: string;
    position: string;
    note: string;
    recordedAt: string;
  }>;
  private readonly processes: Collection<ProcessDoc>;

  private constructor(
    private readonly client: MongoClient,
    private readonly db: Db,
  ) {
    this.checkpoints = db.collection('projection_checkpoints');
    this.active = db.collection('projection_active');
    this.skipsCollection = db.collection('projection_skips');
    this.processes = db.collection('process_checkpoints');
  }

  /** Connects; the database is the one the URL names, `mfa` when it names none. */
  static async connect(url: string): Promise<MongoReadModelStore> {
    const client = new MongoClient(url, { serverSelectionTimeoutMS: 10_000 });
    await client.connect();
    const store = new MongoReadModelStore(client, client.db());
    await store.checkpoints.createIndex({ projection: 1, generation: 1 });
    return store;
  }

  /** For tests: one database per suite run. */
  static async connectTo(url: string, database: string): Promise<MongoReadModelStore> {
    const client = new MongoClient(url, { serverSelectionTimeoutMS: 10_000 });
    await client.connect();
    return new MongoReadModelStore(client, client.db(database));
  }

  async dropDatabase(): Promise<void> {
    await this.db.dropDatabase();
  }

  private docs(target: ReadModelTarget, collection: string): Collection<StoredDocument> {
    return this.db.collection(physicalName(target, collection));
  }

  async prepare(
    schema: ReadModelSchema,
    generation: number,
    options: { indexes?: boolean } = {},
  ): Promise<void> {
    const target = { projection: schema.projection, generation };
    for (const spec of schema.collections) {
      const collection = this.docs(target, spec.name);
      if (options.indexes === false) continue;
      for (const fields of spec.indexes) {
        const keys: Record<string, 1> = {};
        for (const field of fields) keys[field === 'id' ? '_id' : field] = 1;
        await collection.createIndex(keys);
      }
    }
    const pending = await this.checkpoints.findOne({
      _id: checkpointId(target),
      pending: { $exists: true },
    });
    if (pending?.pending) await this.finish(target, pending.pending);
  }

  async dropGeneration(schema: ReadModelSchema, generation: number): Promise<void> {
    const target = { projection: schema.projection, generation };
    for (const spec of schema.collections) {
      await this.docs(target, spec.name)
        .drop()
        .catch(() => undefined);
    }
    await this.checkpoints.deleteOne({ _id: checkpointId(target) });
  }

  async createGeneration(projection: string, version: number): Promise<number> {
    for (;;) {
      const [last] = await this.checkpoints
        .find({ projection })
        .sort({ generation: -1 })
        .limit(1)
        .toArray();
      const active = await this.active.findOne({ _id: projection });
      const generation = Math.max(last?.generation ?? 0, active?.generation ?? 0) + 1;
      try {
        await this.checkpoints.insertOne({
          _id: checkpointId({ projection, generation }),
          projection,
          generation,
          version,
          position: '0',
          failure: null,
          updatedAt: new Date().toISOString(),
        });
        return generation;
      } catch (error) {
        // Another process took this generation number at the same moment.
        if ((error as { code?: number }).code !== 11000) throw error;
      }
    }
  }

  async checkpoint(target: ReadModelTarget): Promise<ProjectionCheckpoint | undefined> {
    const doc = await this.checkpoints.findOne({ _id: checkpointId(target) });
    return doc ? toCheckpoint(doc) : undefined;
  }

  async listCheckpoints(): Promise<ProjectionCheckpoint[]> {
    const docs = await this.checkpoints.find({}).sort({ projection: 1, generation: 1 }).toArray();
    return docs.map(toCheckpoint);
  }

  async activeGenerations(): Promise<Map<string, number>> {
    const docs = await this.active.find({}).toArray();
    return new Map(docs.map((doc) => [doc._id, doc.generation]));
  }

  async activate(target: ReadModelTarget): Promise<void> {
    await this.active.updateOne(
      { _id: target.projection },
      { $set: { generation: target.generation } },
      { upsert: true },
    );
  }

  async commit(
    target: ReadModelTarget,
    commit: ProjectionCommit,
  ): Promise<'committed' | 'conflict'> {
    const changes = [...commit.changes];
    const moved = await this.checkpoints.updateOne(
      { _id: checkpointId(target), position: String(commit.expected) },
      {
        $set: {
          position: String(commit.position),
          failure: commit.failure,
          updatedAt: new Date().toISOString(),
          ...(changes.length > 0 ? { pending: changes } : {}),
        },
      },
    );
    if (moved.matchedCount !== 1) return 'conflict';
    if (changes.length > 0) await this.finish(target, changes);
    return 'committed';
  }

  /** Writes a recorded change set (again) and clears it. Idempotent. */
  private async finish(target: ReadModelTarget, changes: readonly DocumentChange[]): Promise<void> {
    const byCollection = new Map<string, AnyBulkWriteOperation<StoredDocument>[]>();
    for (const change of changes) {
      const operations = byCollection.get(change.collection) ?? [];
      byCollection.set(change.collection, operations);
      operations.push(
        change.doc === null
          ? { deleteOne: { filter: { _id: change.id } } }
          : {
              replaceOne: {
                filter: { _id: change.id },
                replacement: { ...change.doc, _id: change.id },
                upsert: true,
              },
            },
      );
    }
    for (const [collection, operations] of byCollection) {
      // Ordered: two changes of one document in a set apply in their order.
      await this.docs(target, collection).bulkWrite(operations, { ordered: true });
    }
    await this.checkpoints.updateOne({ _id: checkpointId(target) }, { $unset: { pending: '' } });
  }

  async recordSkip(projection: string, position: bigint, note: string): Promise<void> {
    await this.skipsCollection.updateOne(
      { _id: `${projection}#${position}` },
      {
        $setOnInsert: {
          projection,
          position: String(position),
          note,
          recordedAt: new Date().toISOString(),
        },
      },
      { upsert: true },
    );
  }

  async skips(projection: string): Promise<RecordedSkip[]> {
    const docs = await this.skipsCollection.find({ projection }).toArray();
    return docs
      .map((doc) => ({
        projection: doc.projection,
        position: BigInt(doc.position),
        note: doc.note,
        recordedAt: doc.recordedAt,
      }))
      .sort((a, b) => (a.position < b.position ? -1 : 1));
  }

  async get(
    target: ReadModelTarget,
    collection: string,
    id: string,
  ): Promise<ReadModelDocument | undefined> {
    const doc = await this.docs(target, collection).findOne({ _id: id });
    return doc ? withoutId(doc) : undefined;
  }

  async getMany(
    target: ReadModelTarget,
    collection: string,
    ids: readonly string[],
  ): Promise<Map<string, ReadModelDocument>> {
    const docs = await this.docs(target, collection)
      .find({ _id: { $in: [...ids] } })
      .toArray();
    return new Map(docs.map((doc) => [String(doc._id), withoutId(doc)]));
  }

  async find(
    target: ReadModelTarget,
    collection: string,
    query: FindQuery,
  ): Promise<ReadModelDocument[]> {
    const name = (field: string) => (field === 'id' ? '_id' : field);
    const and: Document[] = [];
    for (const [field, value] of Object.entries(query.equals ?? {})) {
      and.push({ [name(field)]: value });
    }
    if (query.contains && query.contains.text !== '') {
      const pattern = escapeRegex(query.contains.text);
      and.push({ $or: query.contains.fields.map((f) => ({ [name(f)]: { $regex: pattern } })) });
    }
    if (query.after) and.push(keysetAfter(query.orderBy.map(name), query.after));
    const sort: Record<string, 1> = {};
    for (const field of query.orderBy) sort[name(field)] = 1;
    const docs = await this.docs(target, collection)
      .find(and.length ? { $and: and } : {})
      .sort(sort)
      .limit(query.limit)
      .toArray();
    return docs.map(withoutId);
  }

  async scan(
    target: ReadModelTarget,
    collection: string,
  ): Promise<Array<{ id: string; doc: ReadModelDocument }>> {
    const docs = await this.docs(target, collection).find({}).sort({ _id: 1 }).toArray();
    return docs.map((doc) => ({ id: String(doc._id), doc: withoutId(doc) }));
  }

  async processCheckpoint(name: string): Promise<bigint | undefined> {
    const doc = await this.processes.findOne({ _id: name });
    return doc?.position === undefined ? undefined : BigInt(doc.position);
  }

  async acquireProcessLease(
    name: string,
    owner: string,
    ttlMs: number,
  ): Promise<AcquiredProcessLease | undefined> {
    // The document first (MongoDB refuses $expr in an upsert's filter), then one conditional
    // write: the lease is free (never held, or expired on the server's clock) or ours. An
    // update pipeline, so the expiry and the term are computed by the server.
    await this.processes
      .updateOne({ _id: name }, { $setOnInsert: { term: 0 } }, { upsert: true })
      .catch((error: unknown) => {
        // Another instance created it at the same moment.
        if ((error as { code?: number }).code !== 11000) throw error;
      });
    const doc = await this.processes.findOneAndUpdate(
      {
        _id: name,
        $or: [
          { owner: { $exists: false } },
          { owner },
          { $expr: { $lte: ['$leaseExpiresAt', '$$NOW'] } },
        ],
      },
      [
        {
          $set: {
            owner,
            term: { $add: [{ $ifNull: ['$term', 0] }, 1] },
            leaseExpiresAt: { $add: ['$$NOW', ttlMs] },
          },
        },
      ],
      { returnDocument: 'after' },
    );
    if (!doc || doc.owner !== owner || doc.term === undefined) return undefined;
    return {
      name,
      owner,
      term: doc.term,
      checkpoint: doc.position === undefined ? undefined : BigInt(doc.position),
    };
  }

  async renewProcessLease(lease: ProcessLease, ttlMs: number): Promise<boolean> {
    const renewed = await this.processes.updateOne(holder(lease), [
      { $set: { leaseExpiresAt: { $add: ['$$NOW', ttlMs] } } },
    ]);
    return renewed.matchedCount === 1;
  }

  async releaseProcessLease(lease: ProcessLease): Promise<void> {
    await this.processes.updateOne(holder(lease), { $set: { leaseExpiresAt: new Date(0) } });
  }

  async holdsProcessLease(lease: ProcessLease, forAtLeastMs: number): Promise<boolean> {
    const held = await this.processes.findOne(
      {
        ...holder(lease),
        $expr: { $gt: ['$leaseExpiresAt', { $add: ['$$NOW', forAtLeastMs] }] },
      },
      { projection: { _id: 1 } },
    );
    return held !== null;
  }

  async saveProcessCheckpoint(
    lease: ProcessLease,
    expected: bigint | undefined,
    position: bigint,
  ): Promise<boolean> {
    const saved = await this.processes.updateOne(
      {
        ...holder(lease),
        position: expected === undefined ? { $exists: false } : String(expected),
      },
      { $set: { position: String(position), updatedAt: new Date().toISOString() } },
    );
    return saved.matchedCount === 1;
  }

  async close(): Promise<void> {
    await this.client.close();
  }
}

/** The filter that matches a process document only while this holder holds its lease. */
function holder(lease: ProcessLease): { _id: string; owner: string; term: number } {
  return { _id: lease.name, owner: lease.owner, term: lease.term };
}

function checkpointId(target: ReadModelTarget): string {
  return `${target.projection}#${target.generation}`;
}

function toCheckpoint(doc: CheckpointDoc): ProjectionCheckpoint {
  return {
    projection: doc.projection,
    generation: doc.generation,
    version: doc.version,
    position: BigInt(doc.position),
    failure: doc.failure ?? null,
  };
}

function withoutId(doc: Document): ReadModelDocument {
  const { _id: _ignored, ...rest } = doc;
  return rest as ReadModelDocument;
}

function escapeRegex(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** (a, b, c) > (x, y, z) as a filter MongoDB can run on the sort index. */
function keysetAfter(fields: string[], values: readonly unknown[]): Document {
  const alternatives: Document[] = fields.map((field, index) => {
    const clause: Document = {};
    for (let i = 0; i < index; i++) clause[fields[i]] = values[i];
    clause[field] = { $gt: values[index] };
    return clause;
  });
  return { $or: alternatives };
}
