import { AnyBulkWriteOperation, Collection, Db, Document, MongoClient } from 'mongodb';

type StoredDocument = Document & { _id: string };
import {
  AcquiredProcessLease,
  DocumentChange,
  FindQuery,
  physicalName,
  ProcessFailure,
  ProcessLease,
  ProjectionCheckpoint,
  ProjectionCommit,
  QuarantinedEvent,
  ReadModelDocument,
  ReadModelSchema,
  ReadModelStore,
  ReadModelTarget,
  RecordedSkip,
  ReplayRequest,
} from './read-model-store.port';

/** A quarantined event as stored: positions as strings (KurrentDB's are unsigned 64-bit). */
interface QuarantineDoc {
  _id: string;
  consumer: string;
  generation: number;
  position: string;
  eventType: string;
  streamId: string | null;
  reason: string;
  at: string;
}

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
  /** Where versions before quarantines kept a stopped projection's event; cleared on commit. */
  failure?: unknown;
  updatedAt: string;
  /** The changes of the last commit, kept until every one of them is written (see commit). */
  pending?: DocumentChange[];
  /** The events the last commit quarantined, kept likewise until written. */
  pendingQuarantine?: QuarantineDoc[];
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
  private readonly quarantineCollection: Collection<QuarantineDoc>;
  private readonly failures: Collection<
    Omit<ProcessFailure, 'name' | 'position'> & { _id: string; position: string }
  >;
  private readonly replays: Collection<{
    _id: string;
    name: string;
    position: string;
    requestedAt: string;
  }>;

  private constructor(
    private readonly client: MongoClient,
    private readonly db: Db,
  ) {
    this.checkpoints = db.collection('projection_checkpoints');
    this.active = db.collection('projection_active');
    this.skipsCollection = db.collection('projection_skips');
    this.processes = db.collection('process_checkpoints');
    this.quarantineCollection = db.collection('consumer_quarantine');
    this.failures = db.collection('process_failures');
    this.replays = db.collection('process_replays');
  }

  /**
   * Connects to `database`, else to the one the URL names (docker-compose.yml's
   * names `mfa`; with none, the driver's default, `test`). Tests pass a
   * database of their own per suite run.
   */
  static async connect(url: string, database?: string): Promise<MongoReadModelStore> {
    const client = new MongoClient(url, { serverSelectionTimeoutMS: 10_000 });
    await client.connect();
    const store = new MongoReadModelStore(client, client.db(database));
    await store.checkpoints.createIndex({ projection: 1, generation: 1 });
    return store;
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
      $or: [{ pending: { $exists: true } }, { pendingQuarantine: { $exists: true } }],
    });
    if (pending) await this.finish(target, pending.pending ?? [], pending.pendingQuarantine ?? []);
  }

  async dropGeneration(schema: ReadModelSchema, generation: number): Promise<void> {
    const target = { projection: schema.projection, generation };
    for (const spec of schema.collections) {
      await this.docs(target, spec.name)
        .drop()
        .catch(() => undefined);
    }
    await this.checkpoints.deleteOne({ _id: checkpointId(target) });
    await this.quarantineCollection.deleteMany({ consumer: schema.projection, generation });
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

  async activateFirst(target: ReadModelTarget): Promise<number> {
    try {
      await this.active.updateOne(
        { _id: target.projection },
        { $setOnInsert: { generation: target.generation } },
        { upsert: true },
      );
    } catch (error) {
      // Two upserts of the same _id at once: the other one inserted it.
      if ((error as { code?: number }).code !== 11000) throw error;
    }
    const active = await this.active.findOne({ _id: target.projection });
    if (!active) throw new Error(`No active generation of ${target.projection} after activating`);
    return active.generation;
  }

  async commit(
    target: ReadModelTarget,
    commit: ProjectionCommit,
  ): Promise<'committed' | 'conflict'> {
    const changes = [...commit.changes];
    const quarantined = (commit.quarantined ?? []).map(toQuarantineDoc);
    const moved = await this.checkpoints.updateOne(
      { _id: checkpointId(target), position: String(commit.expected) },
      {
        $set: {
          position: String(commit.position),
          updatedAt: new Date().toISOString(),
          ...(changes.length > 0 ? { pending: changes } : {}),
          ...(quarantined.length > 0 ? { pendingQuarantine: quarantined } : {}),
        },
        $unset: { failure: '' },
      },
    );
    if (moved.matchedCount !== 1) return 'conflict';
    if (changes.length > 0 || quarantined.length > 0) {
      await this.finish(target, changes, quarantined);
    }
    return 'committed';
  }

  /** Writes a recorded change set and its quarantined events (again) and clears them. Idempotent. */
  private async finish(
    target: ReadModelTarget,
    changes: readonly DocumentChange[],
    quarantined: readonly QuarantineDoc[],
  ): Promise<void> {
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
    if (quarantined.length > 0) {
      await this.quarantineCollection.bulkWrite(
        quarantined.map((doc) => ({
          replaceOne: { filter: { _id: doc._id }, replacement: doc, upsert: true },
        })),
      );
    }
    await this.checkpoints.updateOne(
      { _id: checkpointId(target) },
      { $unset: { pending: '', pendingQuarantine: '' } },
    );
  }

  async recordSkip(consumer: string, position: bigint, note: string): Promise<void> {
    await this.skipsCollection.updateOne(
      { _id: `${consumer}#${position}` },
      {
        $setOnInsert: {
          projection: consumer,
          position: String(position),
          note,
          recordedAt: new Date().toISOString(),
        },
      },
      { upsert: true },
    );
    // Second: a crash in between leaves the event quarantined and skipped, and
    // `quarantined` leaves skipped events out.
    await this.quarantineCollection.deleteMany({ consumer, position: String(position) });
  }

  async removeSkip(consumer: string, position: bigint): Promise<void> {
    await this.skipsCollection.deleteOne({ _id: `${consumer}#${position}` });
  }

  async skips(consumer?: string): Promise<RecordedSkip[]> {
    // The collection kept its first name: it holds process managers' skips too.
    const docs = await this.skipsCollection
      .find(consumer === undefined ? {} : { projection: consumer })
      .toArray();
    return docs
      .map((doc) => ({
        consumer: doc.projection,
        position: BigInt(doc.position),
        note: doc.note,
        recordedAt: doc.recordedAt,
      }))
      .sort((a, b) => compareText(a.consumer, b.consumer) || comparePositions(a, b));
  }

  async quarantine(record: QuarantinedEvent): Promise<void> {
    const doc = toQuarantineDoc(record);
    await this.quarantineCollection.replaceOne({ _id: doc._id }, doc, { upsert: true });
  }

  async quarantined(consumer?: string): Promise<QuarantinedEvent[]> {
    const filter = consumer === undefined ? {} : { consumer };
    const [docs, skips] = await Promise.all([
      this.quarantineCollection.find(filter).toArray(),
      this.skips(consumer),
    ]);
    const skipped = new Set(skips.map((skip) => `${skip.consumer}#${skip.position}`));
    return docs
      .filter((doc) => !skipped.has(`${doc.consumer}#${doc.position}`))
      .map((doc): QuarantinedEvent => ({
        consumer: doc.consumer,
        generation: doc.generation,
        position: BigInt(doc.position),
        eventType: doc.eventType,
        streamId: doc.streamId,
        reason: doc.reason,
        at: doc.at,
      }))
      .sort(
        (a, b) =>
          compareText(a.consumer, b.consumer) ||
          a.generation - b.generation ||
          comparePositions(a, b),
      );
  }

  async releaseQuarantined(consumer: string, position: bigint): Promise<void> {
    await this.quarantineCollection.deleteMany({ consumer, position: String(position) });
  }

  async saveProcessFailure(failure: ProcessFailure): Promise<void> {
    const { name, position, ...rest } = failure;
    await this.failures.replaceOne(
      { _id: name },
      { position: String(position), ...rest },
      { upsert: true },
    );
  }

  async clearProcessFailure(name: string): Promise<void> {
    await this.failures.deleteOne({ _id: name });
  }

  async processFailures(): Promise<ProcessFailure[]> {
    const docs = await this.failures.find({}).sort({ _id: 1 }).toArray();
    return docs.map(({ _id, position, ...rest }) => ({
      ...rest,
      name: _id,
      position: BigInt(position),
    }));
  }

  async requestReplay(name: string, position: bigint): Promise<void> {
    await this.replays.updateOne(
      { _id: `${name}#${position}` },
      {
        $setOnInsert: { name, position: String(position), requestedAt: new Date().toISOString() },
      },
      { upsert: true },
    );
  }

  async replayRequests(): Promise<ReplayRequest[]> {
    const docs = await this.replays.find({}).toArray();
    return docs
      .map((doc) => ({
        name: doc.name,
        position: BigInt(doc.position),
        requestedAt: doc.requestedAt,
      }))
      .sort((a, b) => compareText(a.name, b.name) || comparePositions(a, b));
  }

  async clearReplayRequest(name: string, position: bigint): Promise<void> {
    await this.replays.deleteOne({ _id: `${name}#${position}` });
  }

  async get(
    target: ReadModelTarget,
    collection: string,
    id: string,
  ): Promise<ReadModelDocument | undefined> {
    const doc = await this.docs(target, collection).findOne({ _id: id });
    return doc ? withoutId(doc) : undefined;
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
      // An unanchored regex of the literal (folded) text, case-sensitive: the text and the
      // fields are folded already. No index bounds serve it: the plan walks the firm's
      // range of a compound index in sort order and stops when the page is full, testing
      // the regex on the index keys where the planner can (the `search` fields are in the
      // indexes for that), else on each document. So a search that matches nobody costs
      // one walk of the firm's entries, O(documents of the firm), as SQLite's fallback for
      // short texts does. The n-gram index SQLite has (FTS5 trigram) exists in MongoDB only
      // as Atlas Search, which a self-hosted server does not have.
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

  async listProcessCheckpoints(): Promise<Array<{ name: string; position: bigint }>> {
    // A lease may exist before its manager's first checkpoint: those have none to list.
    const docs = await this.processes
      .find({ position: { $exists: true } })
      .sort({ _id: 1 })
      .toArray();
    return docs.map((doc) => ({ name: doc._id, position: BigInt(doc.position!) }));
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
  };
}

function toQuarantineDoc(record: QuarantinedEvent): QuarantineDoc {
  return {
    _id: `${record.consumer}#${record.generation}#${record.position}`,
    consumer: record.consumer,
    generation: record.generation,
    position: String(record.position),
    eventType: record.eventType,
    streamId: record.streamId,
    reason: record.reason,
    at: record.at,
  };
}

const compareText = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

const comparePositions = (a: { position: bigint }, b: { position: bigint }) =>
  a.position < b.position ? -1 : a.position > b.position ? 1 : 0;

function withoutId(doc: Document): ReadModelDocument {
  const { _id: _ignored, ...rest } = doc;
  return rest as ReadModelDocument;
}

/** The text as a PCRE pattern matching it literally (a NUL, which a pattern cannot hold, as \\x00). */
function escapeRegex(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&').replace(/\0/g, '\\x00');
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
