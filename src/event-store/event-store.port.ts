/**
 * The event store port. Two adapters implement it: SQLite (embedded default) and
 * KurrentDB (production). Both pass test/event-store/event-store.contract.ts.
 *
 * Positions and revisions are bigints: KurrentDB's are 64-bit and a number would
 * silently lose precision past 2^53.
 */
export type JsonValue =
  string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };
export type JsonObject = { [key: string]: JsonValue };

export type ActorRole = 'operator' | 'superuser' | 'host' | 'user' | 'auditor' | 'system';

export interface EventMetadata {
  eventId: string;
  firmId: string;
  actor: { id: string; role: ActorRole };
  correlationId: string;
  causationId: string;
  commandId: string;
  /** ISO-8601 time the event was decided. */
  occurredAt: string;
  schemaVersion: number;
}

export interface NewEvent {
  type: string;
  data: JsonObject;
  metadata: EventMetadata;
}

export interface RecordedEvent extends NewEvent {
  streamId: string;
  /** 0-based index of the event in its stream. */
  revision: bigint;
  /** Position in the global log; strictly increasing in log order. */
  position: bigint;
  /**
   * Set when the stored event could not be read (its data or metadata is not
   * JSON, or not a JSON object): why, without quoting it. `data` is then {}
   * and `metadata` holds whatever could be read, possibly nothing: do not rely
   * on its fields. Adapters never throw on such a row; each consumer
   * quarantines it (DESIGN §6, src/event-store/stored-event.ts), and the
   * command handler refuses to decide on its stream.
   */
  corrupt?: string;
}

/** `bigint` is the revision of the stream's last event (0-based). */
export type ExpectedRevision = 'no_stream' | 'stream_exists' | 'any' | bigint;

/** One stream's part of a multi-stream append. */
export interface StreamAppend {
  streamId: string;
  /**
   * May be empty: the stream is then only checked against `expectedRevision`,
   * so that a decision which relied on its state (a seat the user already
   * holds, say) cannot commit once that state has moved.
   */
  events: NewEvent[];
  expectedRevision: ExpectedRevision;
}

export interface AppendResult {
  /** Revision of the last event now in the stream (-1n: the stream does not exist); pass it as the next expected revision. */
  nextExpectedRevision: bigint;
  /** Global position of the last event of this append (0n for a multi-stream part without events). */
  position: bigint;
  /**
   * Whether the append was a retried write: its event ids were already stored
   * (by an earlier run of the same command, possibly another process's), so
   * nothing was written now and the result is the first write's. Such an
   * answer says nothing of the expected revision: the stored events may have
   * been decided on another state than the caller's, and may differ from the
   * caller's events (a random secret). `true`: already stored; `false`:
   * written by this call; `undefined`: the adapter cannot tell (KurrentDB's
   * own retry detection answers the first result as if written now), so a
   * caller that relies on the difference reads the command's events back
   * (`readCommand`).
   */
  alreadyStored?: boolean;
}

export interface ReadStreamOptions {
  direction?: 'forwards' | 'backwards';
  /** Inclusive. Forwards defaults to 0, backwards to the end. */
  fromRevision?: bigint;
  maxCount?: number;
}

export interface ReadAllOptions {
  /** Exclusive: events with a position greater than this. 0n is the start of the log. */
  after?: bigint;
  maxCount?: number;
}

export interface ReadPageOptions {
  /** Exclusive, as in readAll. */
  after: bigint;
  /** The most log positions one page spans (an adapter may return fewer). */
  maxCount: number;
  /** Only events of these types are returned; an adapter may pass over the others without parsing them. */
  types?: readonly string[];
}

/** A page of the global log for bulk readers (rebuilds). */
export interface LogPage {
  /** In log order, only of the requested types. */
  events: RecordedEvent[];
  /**
   * The page covers the log up to and including this position: every event
   * after `after` and at or before `through` is in `events` or of another
   * type. Equal to `after` when the log has nothing more.
   */
  through: bigint;
  /** How many events of the log the page covers, returned or passed over. */
  scanned: number;
}

/**
 * A page of one firm's events (audit export, state as of a moment). The
 * firm's events are those of its streams, the streams named
 * `category-{firmId}` or `category-{firmId}/{id}` (category: lower-case
 * letters; src/shared/ids.ts `streams`), except an event whose
 * `metadata.firmId` names another firm. An event whose data or metadata
 * cannot be read is returned marked `corrupt` (it is in the firm's stream and
 * names no other firm), never thrown.
 */
export interface ReadFirmOptions {
  /** Exclusive, as in readAll: events with a position greater than this. 0n is the start of the log. */
  after: bigint;
  /** The most events one page returns (at least 1). */
  maxCount: number;
  /** Only events of these stored types; an adapter may pass over the others without parsing them. */
  types?: readonly string[];
}

/** An event of a firm's page: as any recorded event, with the text it is stored as when there is one. */
export interface FirmEvent extends RecordedEvent {
  /**
   * The stored JSON text of `data` and `metadata`, when the adapter keeps
   * events as text (SQLite) and could read them: for an audit export, which
   * writes this text as it is rather than serializing the parsed objects
   * again. For events the service wrote it is `JSON.stringify` of each.
   */
  storedJson?: { data: string; metadata: string };
}

export interface FirmPage {
  /** The firm's events, in log order. */
  events: FirmEvent[];
  /**
   * Every event of the firm (of the requested types) after `after` and at or
   * before this position is in `events`; read the next page after it. Equal
   * to `after` when the firm has nothing more.
   */
  through: bigint;
}

export interface SubscribeOptions {
  /** Exclusive start: the last position the subscriber has already processed. */
  after: bigint;
  /**
   * Called with events in log order; the next batch waits until the promise
   * settles. The events may be the very objects handed to the store's other
   * subscriptions (SQLite shares a read among them, ADR 0021): read them, never
   * change them. The array is the subscriber's own.
   */
  onEvents: (events: RecordedEvent[]) => Promise<void>;
  /** Called once when the subscription stops on an error (the handler threw, or the store failed). */
  onError?: (error: unknown) => void;
  /** Called each time the subscription has caught up with the head of the log. */
  onCaughtUp?: (position: bigint) => void;
  batchSize?: number;
}

export interface StoreSubscription {
  stop(): Promise<void>;
}

export class WrongExpectedRevisionError extends Error {
  constructor(
    readonly streamId: string,
    readonly expected: ExpectedRevision,
    readonly actual: bigint | 'no_stream',
  ) {
    super(`Stream ${streamId}: expected revision ${String(expected)}, actual ${String(actual)}`);
    this.name = 'WrongExpectedRevisionError';
  }
}

/** The same event ids were appended again, but not as the same batch of the same stream. */
export class DuplicateEventIdError extends Error {
  constructor(readonly eventId: string) {
    super(`Event id ${eventId} already exists in another append`);
    this.name = 'DuplicateEventIdError';
  }
}

export interface EventStore {
  /**
   * Appends atomically, checking the expected revision. Appending event ids that
   * were already appended as the same batch to the same stream is a no-op that
   * returns the first result (a retried write never duplicates), whatever the
   * expected revision, with `alreadyStored: true` where the adapter can tell.
   */
  appendToStream(
    streamId: string,
    events: NewEvent[],
    expectedRevision: ExpectedRevision,
  ): Promise<AppendResult>;
  /**
   * Appends to several streams as one unit, each part checked against its own
   * expected revision (DESIGN §6: a rule spanning two streams, a seat and the
   * factor holding it, commits atomically where the store allows it).
   * Answers one result per part, in order. `multiStreamAtomicity()` says
   * whether the store makes it all or nothing; a store that cannot (KurrentDB
   * before 25.1) appends the parts one after another in the order given and
   * stops at the first refusal, so callers put first the part whose loss a
   * process manager can repair. A retried write answers as `appendToStream`
   * does, each part's result flagged `alreadyStored` where the adapter can
   * tell. Errors: WrongExpectedRevisionError (nothing of an atomic append was
   * written), DuplicateEventIdError.
   */
  appendToStreams(appends: readonly StreamAppend[]): Promise<AppendResult[]>;
  /** `atomic` when `appendToStreams` is all or nothing (SQLite; KurrentDB 25.1+), else `sequential`. */
  multiStreamAtomicity(): Promise<'atomic' | 'sequential'>;
  /**
   * The events that command `commandId` appended to `streamId`, in stream
   * order, or [] when it appended none: how the command handler recognises a
   * command it already applied, whatever the stream's state by now (DESIGN §6,
   * idempotent commands). Matches `metadata.commandId` exactly.
   */
  readCommand(streamId: string, commandId: string): Promise<RecordedEvent[]>;
  /** A stream that does not exist reads as empty. */
  readStream(streamId: string, options?: ReadStreamOptions): Promise<RecordedEvent[]>;
  /**
   * Optional, for stores that can tell cheaply (SQLite): whether `streamId`
   * may hold an event at a global position after `position`, appends of
   * every writer counted, this process's and other processes' alike, as of
   * this call. `false` only when the store knows that nothing was appended to
   * the stream after `position`; `true` when something was; `undefined` when
   * it cannot tell (a position older than what it tracks): read the stream.
   * With it the command handler answers from its folded state without
   * reading the stream (docs/architecture.md, "Reads on the hot path").
   */
  streamChangedSince?(streamId: string, position: bigint): boolean | undefined;
  /**
   * With `streamChangedSince`: the position through which the store has
   * checked the log for appends, as of this call. A stream read after this
   * call holds at least every event of that stream up to that position.
   */
  checkedHead?(): bigint;
  readAll(options?: ReadAllOptions): Promise<RecordedEvent[]>;
  /** Reads the global log in large pages, keeping only some event types (for rebuilds). */
  readPage(options: ReadPageOptions): Promise<LogPage>;
  /**
   * One firm's events in log order, a page at a time (see ReadFirmOptions for
   * which events are the firm's). SQLite answers from an index on the firm a
   * stream name carries; KurrentDB reads $all with a server-side stream-name
   * filter. Never throws on a stored event that cannot be read.
   */
  readFirm(firmId: string, options: ReadFirmOptions): Promise<FirmPage>;
  /** Catches up from `after`, then follows new events live, in order, until stopped. */
  subscribeToAll(options: SubscribeOptions): StoreSubscription;
  /** Position of the last event in the log, 0n when empty. */
  headPosition(): Promise<bigint>;
  close(): Promise<void>;
}

export const EVENT_STORE = Symbol('EventStore');
