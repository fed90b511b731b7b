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
  /**
   * Text fields, each also in `fields`, that `contains` may search: kept in
   * an index that serves substring search. SQLite: an FTS5 table with the
   * trigram tokenizer beside the collection, written by triggers in the
   * commit's own transaction (a query of fewer than three characters, which
   * trigrams cannot serve, walks the compound index instead). MongoDB: an
   * unanchored regex over the compound index's keys (see its adapter).
   */
  search?: readonly string[];
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
  /**
   * Keeps documents where any of the fields (declared in the collection's
   * `search`) holds `text` as a substring, character for character: the
   * stores add no case or accent rule of their own. Store and pass folded
   * text (src/shared/search-folding.ts). An empty `text` keeps every document.
   */
  contains?: { fields: readonly string[]; text: string };
  /** Ascending; the last field must make the order total (usually `id`). */
  orderBy: readonly string[];
  /** Keyset cursor: the `orderBy` values of the last document of the previous page. */
  after?: readonly IndexValue[];
  limit: number;
}

/**
 * An event a consumer (a projection or a process manager) could not process
 * and passed over, so that one bad event stops neither it nor anyone else
 * (DESIGN §6): the stored event could not be read (`RecordedEvent.corrupt`),
 * or a projection's `apply` threw on it (a missing field, say). Shown to
 * operators until they skip it or replay it once fixed.
 */
export interface QuarantinedEvent {
  /** The projection or process manager. */
  consumer: string;
  /** The projection's generation whose documents lack the event; 0 for a process manager. */
  generation: number;
  position: bigint;
  eventType: string;
  /** The event's stream; null when it could not be read. */
  streamId: string | null;
  /** The error's message only (no stack), or why the stored event could not be read. */
  reason: string;
  /** ISO time it was quarantined (the last time, when quarantined again). */
  at: string;
}

export interface ProjectionCheckpoint {
  projection: string;
  generation: number;
  /** The projection's code version that built this generation. */
  version: number;
  /** Every event up to and including this position has been applied or quarantined. */
  position: bigint;
}

export interface ProjectionCommit {
  /** The checkpoint the changes were computed from; another writer having moved it is a conflict. */
  expected: bigint;
  position: bigint;
  changes: readonly DocumentChange[];
  /** Events of the batch passed over, kept with the checkpoint that passes them (same generation). */
  quarantined?: readonly QuarantinedEvent[];
}

/** An operator's decision that a consumer does without the event at `position`. */
export interface RecordedSkip {
  /** The projection or process manager. */
  consumer: string;
  position: bigint;
  note: string;
  recordedAt: string;
}

/**
 * The event a process manager's `handle` keeps failing on: retried with
 * back-off (it may be a store that is down) until it succeeds or an operator
 * skips it. Kept in the store so that the CLI, in another process, can check
 * a skip names it.
 */
export interface ProcessFailure {
  name: string;
  position: bigint;
  eventType: string;
  streamId: string | null;
  /** The last error's message only. */
  error: string;
  attempts: number;
  /** ISO times of the first and of the last failed attempt. */
  since: string;
  at: string;
}

/** An operator asked a process manager to handle the event at `position` again. */
export interface ReplayRequest {
  name: string;
  position: bigint;
  requestedAt: string;
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
  /** Drops a generation's collections, its checkpoint and its quarantined events. */
  dropGeneration(schema: ReadModelSchema, generation: number): Promise<void>;

  /** A new generation, one above any known for the projection, at position 0. */
  createGeneration(projection: string, version: number): Promise<number>;
  checkpoint(target: ReadModelTarget): Promise<ProjectionCheckpoint | undefined>;
  listCheckpoints(): Promise<ProjectionCheckpoint[]>;
  /** The generation readers use, per projection. */
  activeGenerations(): Promise<Map<string, number>>;
  /**
   * Makes `target` the projection's active generation only if it has none
   * yet, atomically, and answers the generation that is active now: `target`'s,
   * or the one another process activated first. Two instances starting on an
   * empty store then serve one generation, and neither drops the other's.
   */
  activateFirst(target: ReadModelTarget): Promise<number>;
  activate(target: ReadModelTarget): Promise<void>;
  /**
   * Writes the changes and the quarantined events and moves the checkpoint,
   * all or nothing. Answers
   * `conflict` (and writes nothing) when the stored checkpoint is not
   * `expected`: another writer applied these events first.
   */
  commit(target: ReadModelTarget, commit: ProjectionCommit): Promise<'committed' | 'conflict'>;

  /**
   * Records that `consumer` does without the event at `position` (once; a
   * second record keeps the first note) and takes the event out of the
   * consumer's quarantine, every generation of it.
   */
  recordSkip(consumer: string, position: bigint, note: string): Promise<void>;
  /** Forgets a skip (before the event is replayed). */
  removeSkip(consumer: string, position: bigint): Promise<void>;
  /** The skips of one consumer, or of all; by consumer, then position. */
  skips(consumer?: string): Promise<RecordedSkip[]>;

  /**
   * Quarantines an event for a process manager (a projection's quarantined
   * events come with its `commit`). Quarantining the same (consumer,
   * generation, position) again keeps one record, with the later reason.
   */
  quarantine(record: QuarantinedEvent): Promise<void>;
  /**
   * Quarantined events of one consumer, or of all, by consumer, generation and
   * position. Events the consumer has skipped since are left out.
   */
  quarantined(consumer?: string): Promise<QuarantinedEvent[]>;
  /** Takes the event out of the consumer's quarantine, every generation (it was replayed). */
  releaseQuarantined(consumer: string, position: bigint): Promise<void>;

  /** Records the event a process manager's `handle` keeps failing on (one per manager). */
  saveProcessFailure(failure: ProcessFailure): Promise<void>;
  /** The manager handled or passed its failing event. */
  clearProcessFailure(name: string): Promise<void>;
  processFailures(): Promise<ProcessFailure[]>;

  /** Asks process manager `name` to handle the event at `position` again (the CLI's replay). */
  requestReplay(name: string, position: bigint): Promise<void>;
  replayRequests(): Promise<ReplayRequest[]>;
  clearReplayRequest(name: string, position: bigint): Promise<void>;

  get(
    target: ReadModelTarget,
    collection: string,
    id: string,
  ): Promise<ReadModelDocument | undefined>;
  find(target: ReadModelTarget, collection: string, query: FindQuery): Promise<ReadModelDocument[]>;
  /** Every document, ordered by id, as stored: for rebuild comparisons and audits. */
  scan(
    target: ReadModelTarget,
    collection: string,
  ): Promise<Array<{ id: string; doc: ReadModelDocument }>>;

  /** A process manager's checkpoint (every event up to it is handled), undefined before its first save. */
  processCheckpoint(name: string): Promise<bigint | undefined>;
  /** Every process manager that has a checkpoint, by name (for the CLI's status). */
  listProcessCheckpoints(): Promise<Array<{ name: string; position: bigint }>>;

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
