import type { JsonObject } from '../event-store/event-store.port';

/**
 * The read-model store port: where projections keep their documents and
 * checkpoints, and where process managers keep theirs. Two adapters implement
 * it: SQLite (embedded default, `readmodels.sqlite` in DATA_DIR) and MongoDB
 * (when MONGODB_URL is set). Both pass test/read-model/read-model-store.contract.ts.
 *
 * Documents are JSON objects in named collections. A collection declares the
 * fields it keeps indexed; queries filter, search and sort only on those, so
 * every dashboard query runs on an index on both adapters.
 *
 * Each projection writes into a *generation* of its collections. A rebuild
 * fills a new generation beside the one being read, then `activate` switches
 * to it; readers never see a half-built read model.
 */
export type ReadModelDocument = JsonObject;
export type IndexValue = string | number | null;

export interface CollectionSpec {
  /** Lower case letters, digits and `_`. */
  name: string;
  /** Document fields copied into indexed columns. `id` (the document id) is always available. */
  fields: readonly string[];
  /** Compound indexes, each the fields a query filters on by equality, then the fields it sorts by. */
  indexes: ReadonlyArray<readonly string[]>;
}

export interface ReadModelSchema {
  projection: string;
  collections: readonly CollectionSpec[];
}

/** One generation of one projection's collections. */
export interface ReadModelTarget {
  projection: string;
  generation: number;
}

/** `doc: null` deletes the document. */
export interface DocumentChange {
  collection: string;
  id: string;
  doc: ReadModelDocument | null;
}

export interface FindQuery {
  /** Equality on indexed fields (`null` matches a missing or null value). */
  equals?: Readonly<Record<string, IndexValue>>;
  /** Keeps documents where any of the fields contains `text` (compared as is: store and pass lower case). */
  contains?: { fields: readonly string[]; text: string };
  /** Ascending; the last field must make the order total (usually `id`). */
  orderBy: readonly string[];
  /** Keyset cursor: the `orderBy` values of the last document of the previous page. */
  after?: readonly IndexValue[];
  limit: number;
}

export interface ProjectionFailure {
  /** Position of the event the projection could not apply. */
  position: string;
  eventType: string;
  /** The error's message only: no stack. */
  error: string;
  at: string;
}

export interface ProjectionCheckpoint {
  projection: string;
  generation: number;
  /** The projection's code version that built this generation. */
  version: number;
  /** Every event up to and including this position has been applied. */
  position: bigint;
  failure: ProjectionFailure | null;
}

export interface ProjectionCommit {
  /** The checkpoint the changes were computed from; another writer having moved it is a conflict. */
  expected: bigint;
  position: bigint;
  changes: readonly DocumentChange[];
  failure: ProjectionFailure | null;
}

export interface RecordedSkip {
  projection: string;
  position: bigint;
  note: string;
  recordedAt: string;
}

/**
 * Who runs a process manager (DESIGN §6: one owner at a time across
 * instances). A holder is the pair (owner, term): `term` grows by one at every
 * acquisition, so a holder that lost the lease and took it again is not
 * mistaken for its earlier self (a fencing token).
 */
export interface ProcessLease {
  /** The process manager's name, as for its checkpoint. */
  name: string;
  /** The instance holding it (an opaque id, unique per process). */
  owner: string;
  term: number;
}

export interface AcquiredProcessLease extends ProcessLease {
  /** The process manager's checkpoint when the lease was taken; undefined before its first save. */
  checkpoint: bigint | undefined;
}

export interface ReadModelStore {
  readonly kind: 'sqlite' | 'mongodb';

  /**
   * Creates a generation's collections and indexes (idempotent) and remembers
   * the schema. `indexes: false` leaves the indexes out, for a bulk load into
   * a generation nobody reads yet (a rebuild): building them once at the end,
   * by a second `prepare`, is much cheaper than keeping them up to date row by row.
   */
  prepare(
    schema: ReadModelSchema,
    generation: number,
    options?: { indexes?: boolean },
  ): Promise<void>;
  dropGeneration(schema: ReadModelSchema, generation: number): Promise<void>;

  /** A new generation, one above any known for the projection, at position 0. */
  createGeneration(projection: string, version: number): Promise<number>;
  checkpoint(target: ReadModelTarget): Promise<ProjectionCheckpoint | undefined>;
  listCheckpoints(): Promise<ProjectionCheckpoint[]>;
  /** The generation readers use, per projection. */
  activeGenerations(): Promise<Map<string, number>>;
  activate(target: ReadModelTarget): Promise<void>;
  /**
   * Writes the changes and moves the checkpoint, all or nothing. Answers
   * `conflict` (and writes nothing) when the stored checkpoint is not
   * `expected`: another writer applied these events first.
   */
  commit(target: ReadModelTarget, commit: ProjectionCommit): Promise<'committed' | 'conflict'>;

  recordSkip(projection: string, position: bigint, note: string): Promise<void>;
  skips(projection: string): Promise<RecordedSkip[]>;

  get(
    target: ReadModelTarget,
    collection: string,
    id: string,
  ): Promise<ReadModelDocument | undefined>;
  getMany(
    target: ReadModelTarget,
    collection: string,
    ids: readonly string[],
  ): Promise<Map<string, ReadModelDocument>>;
  find(target: ReadModelTarget, collection: string, query: FindQuery): Promise<ReadModelDocument[]>;
  /** Every document, ordered by id, as stored: for rebuild comparisons and audits. */
  scan(
    target: ReadModelTarget,
    collection: string,
  ): Promise<Array<{ id: string; doc: ReadModelDocument }>>;

  /** A process manager's checkpoint (every event up to it is handled), undefined before its first save. */
  processCheckpoint(name: string): Promise<bigint | undefined>;

  /**
   * Takes a process manager's lease for `ttlMs` milliseconds when nobody holds
   * it, it expired, or `owner` holds it already; the term grows by one each
   * time. Answers undefined, changing nothing, while another owner holds an
   * unexpired lease. Expiry is measured on the store's clock: the local clock
   * for SQLite (instances sharing one file share a machine), the server's for
   * MongoDB. Returns the checkpoint read in the same step.
   */
  acquireProcessLease(
    name: string,
    owner: string,
    ttlMs: number,
  ): Promise<AcquiredProcessLease | undefined>;
  /**
   * Extends the lease to `ttlMs` from now. False when this holder (owner and
   * term) no longer holds it: another owner took it after it expired. A lease
   * that expired but was not taken is renewed: nobody else worked meanwhile.
   */
  renewProcessLease(lease: ProcessLease, ttlMs: number): Promise<boolean>;
  /** Ends the lease at once, so a standby takes over without waiting for the expiry. No-op for a former holder. */
  releaseProcessLease(lease: ProcessLease): Promise<void>;
  /**
   * True when this holder holds the lease and it is valid for at least
   * `forAtLeastMs` more, on the store's clock: the check before a side effect
   * that must not happen twice (the mailer's hand-over to the mail server).
   */
  holdsProcessLease(lease: ProcessLease, forAtLeastMs: number): Promise<boolean>;
  /**
   * Compare-and-set of a process manager's checkpoint: moves it to `position`
   * only when this holder still holds the lease and the stored checkpoint is
   * `expected` (undefined: none stored yet). False, writing nothing,
   * otherwise: another instance owns the work now. STYLE.md: a blind upsert of
   * a checkpoint lets two instances do the same work twice.
   */
  saveProcessCheckpoint(
    lease: ProcessLease,
    expected: bigint | undefined,
    position: bigint,
  ): Promise<boolean>;

  close(): Promise<void>;
}

export const READ_MODEL_STORE = Symbol('ReadModelStore');

/** Physical names: `rm_<projection>_g<generation>_<collection>`, safe on both adapters. */
export function physicalName(target: ReadModelTarget, collection: string): string {
  const projection = target.projection.replace(/[^a-z0-9]/gi, '_').toLowerCase();
  if (!/^[a-z0-9_]+$/.test(collection)) throw new Error(`Bad collection name ${collection}`);
  return `rm_${projection}_g${target.generation}_${collection}`;
}

export function collectionSpec(schema: ReadModelSchema, collection: string): CollectionSpec {
  const spec = schema.collections.find((c) => c.name === collection);
  if (!spec) throw new Error(`${schema.projection} has no collection ${collection}`);
  return spec;
}
