import Database from 'better-sqlite3';
import { watch, type FSWatcher } from 'node:fs';
import {
  AppendResult,
  DuplicateEventIdError,
  EventStore,
  ExpectedRevision,
  FirmEvent,
  FirmPage,
  LogPage,
  NewEvent,
  ReadAllOptions,
  ReadFirmOptions,
  ReadPageOptions,
  ReadStreamOptions,
  RecordedEvent,
  StoreSubscription,
  StreamAppend,
  SubscribeOptions,
  WrongExpectedRevisionError,
} from './event-store.port';
import { linkEvents, UnhashableEventError } from './chaining-event-store';
import { fromJsonText, ofFirm } from './stored-event';
import { SharedReads, SubscriptionLoop } from './subscription-loop';

interface EventRow {
  position: number | bigint;
  event_id: string;
  stream_id: string;
  revision: number | bigint;
  type: string;
  data: string;
  metadata: string;
}

/** The command id of a row, for the index and its query (which must spell it the same). */
const COMMAND_ID = `CASE WHEN json_valid(metadata) THEN json_extract(metadata, '$.commandId') END`;

/**
 * The firm a stream's name carries: `{firmId}` in `category-{firmId}` or
 * `category-{firmId}/{id}`, where the category is lower-case letters; NULL
 * for any other name. Computed from the name alone (no JSON), so the index
 * costs an append next to nothing and covers logs written before it.
 */
const STREAM_REST = `substr(stream_id, instr(stream_id, '-') + 1)`;
const STREAM_FIRM = `CASE
  WHEN instr(stream_id, '-') > 1
   AND substr(stream_id, 1, instr(stream_id, '-') - 1) NOT GLOB '*[^a-z]*'
  THEN CASE WHEN instr(${STREAM_REST}, '/') > 0
         THEN substr(${STREAM_REST}, 1, instr(${STREAM_REST}, '/') - 1)
         ELSE ${STREAM_REST} END
END`;

/** position, stream_id, revision, type, data, metadata (integers as bigints). */
type PageRow = [bigint, string, bigint, string, string, string];

/** One caller's append: one stream, or several that commit together. */
interface PendingAppend {
  appends: readonly StreamAppend[];
  resolve: (results: AppendResult[]) => void;
  reject: (error: unknown) => void;
}

export interface SqliteEventStoreOptions {
  /** `synchronous=FULL` (the default) makes an acknowledged append survive a power cut. */
  synchronous?: 'FULL' | 'NORMAL';
  /** How often a waiting subscription checks for commits made by other processes. */
  foreignCommitCheckMs?: number;
  /**
   * Chain every appended event to its stream's predecessor (`metadata.hash`,
   * `metadata.previousHash`: ADR 0017), inside the write transaction, which
   * holds the stream's head. True by default; false only to write a log as
   * versions before chains did (tests of how such history verifies).
   */
  chainAppends?: boolean;
}

/** The stream's last event: its revision (null: no stream) and its hash (null: none or unchained). */
interface StreamHead {
  revision: bigint | null;
  hash: string | null;
}

const HASH = /^[0-9a-f]{64}$/;

/** How many changed streams the tail check remembers before it starts over (streamChangedSince). */
const MAX_TRACKED_STREAMS = 100_000;

/**
 * The embedded event log: one SQLite file in WAL mode.
 *
 * Appends are group-committed: every append requested in the same turn of the
 * event loop goes into one IMMEDIATE transaction, so concurrent commands share
 * one fsync. Each append still has its own savepoint, so one wrong expected
 * revision refuses only that append. Positions are allocated inside the write
 * transaction, which holds SQLite's write lock from BEGIN, so position order is
 * commit order even with two processes on the same file: a reader never sees
 * position n+1 before n.
 *
 * Hash chains (ADR 0017) are made in the same transaction: the revision check
 * reads the stream's head with its hash, so the predecessor is exact without
 * a read before the append, whatever the expected revision asked.
 */
export class SqliteEventStore implements EventStore {
  private readonly db: Database.Database;
  private readonly statements;
  private readonly appendOne: (request: PendingAppend) => AppendResult[];
  private queue: PendingAppend[] = [];
  private flushScheduled = false;
  private readonly waiters = new Set<() => void>();
  private readonly loops = new Set<SubscriptionLoop>();
  /** The subscriptions' reads: one per position and turn for all of them (subscription-loop.ts). */
  private readonly sharedReads = new SharedReads((after, max) => this.readAllNow(after, max));
  private foreignCheck: NodeJS.Timeout | undefined;
  private walWatcher: FSWatcher | undefined;
  private lastDataVersion = 0;
  private closed = false;
  /**
   * The streams appended to since `from` (a log position), each with the
   * position of its last event: read from the log's tail, at most once per
   * turn of the event loop, so that a reader learns with one statement which
   * of its cached streams changed (streamChangedSince).
   */
  private readonly tail = {
    from: 0n,
    head: 0n,
    lastChange: new Map<string, bigint>(),
    checkedThisTurn: false,
  };

  constructor(
    private readonly file: string,
    private readonly options: SqliteEventStoreOptions = {},
  ) {
    this.db = new Database(file);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma(`synchronous = ${options.synchronous ?? 'FULL'}`);
    this.db.pragma('busy_timeout = 10000');
    this.db.defaultSafeIntegers(true);
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS events (
        position  INTEGER PRIMARY KEY AUTOINCREMENT,
        event_id  TEXT    NOT NULL UNIQUE,
        stream_id TEXT    NOT NULL,
        revision  INTEGER NOT NULL,
        type      TEXT    NOT NULL,
        data      TEXT    NOT NULL,
        metadata  TEXT    NOT NULL,
        UNIQUE (stream_id, revision)
      );
      -- "Has this command already appended to this stream?" (readCommand). An index
      -- on an expression of the metadata, so logs written before it need no migration;
      -- guarded by json_valid, so that a corrupt row can neither stop the index being
      -- built nor be refused at insert (it is read as corrupt, DESIGN §6).
      DROP INDEX IF EXISTS events_by_command;
      CREATE INDEX IF NOT EXISTS events_by_command_id
        ON events (${COMMAND_ID}, stream_id);
      -- One firm's events in log order (readFirm: audit export, state as of a moment).
      -- An expression index too: built once over an older log when first opened.
      CREATE INDEX IF NOT EXISTS events_by_firm ON events (${STREAM_FIRM}, position);
    `);
    this.statements = {
      streamRevision: this.db
        .prepare('SELECT max(revision) AS revision FROM events WHERE stream_id = ?')
        .pluck(),
      // The same index walk as max(revision); json_valid keeps a corrupt row from failing it.
      streamHead: this.db.prepare(
        `SELECT revision,
                CASE WHEN json_valid(metadata) THEN json_extract(metadata, '$.hash') END AS hash
         FROM events WHERE stream_id = ? ORDER BY revision DESC LIMIT 1`,
      ),
      byEventId: this.db.prepare(
        'SELECT position, stream_id, revision FROM events WHERE event_id = ?',
      ),
      insert: this.db.prepare(
        `INSERT INTO events (event_id, stream_id, revision, type, data, metadata)
         VALUES (?, ?, ?, ?, ?, ?)`,
      ),
      readForwards: this.db.prepare(
        `SELECT * FROM events WHERE stream_id = ? AND revision >= ? ORDER BY revision ASC LIMIT ?`,
      ),
      // INDEXED BY: the planner would otherwise walk the stream's (stream_id, revision)
      // index for the ORDER BY, which is the whole stream for a firm's long ones.
      byCommand: this.db.prepare(
        `SELECT * FROM events INDEXED BY events_by_command_id
         WHERE ${COMMAND_ID} = ? AND stream_id = ?
         ORDER BY revision`,
      ),
      readBackwards: this.db.prepare(
        `SELECT * FROM events WHERE stream_id = ? AND revision <= ? ORDER BY revision DESC LIMIT ?`,
      ),
      readAll: this.db.prepare(`SELECT * FROM events WHERE position > ? ORDER BY position LIMIT ?`),
      head: this.db.prepare('SELECT coalesce(max(position), 0) FROM events').pluck(),
      // The appends after a position: a rowid range, usually empty or a few rows.
      tail: this.db
        .prepare('SELECT position, stream_id FROM events WHERE position > ? ORDER BY position')
        .raw(),
      // Pages for rebuilds: a range of positions (a rowid range scan), rows as arrays,
      // and only the wanted types are handed to JavaScript and parsed.
      page: this.db
        .prepare(
          `SELECT position, stream_id, revision, type, data, metadata FROM events
           WHERE position > ? AND position <= ? ORDER BY position`,
        )
        .raw(),
      // INDEXED BY: ORDER BY position would otherwise tempt the planner into the
      // rowid range, the whole log after `after`, for a firm with few events.
      firm: this.db
        .prepare(
          `SELECT position, stream_id, revision, type, data, metadata FROM events
           INDEXED BY events_by_firm
           WHERE ${STREAM_FIRM} = ? AND position > ? ORDER BY position LIMIT ?`,
        )
        .raw(),
      firmOfTypes: this.db
        .prepare(
          `SELECT position, stream_id, revision, type, data, metadata FROM events
           INDEXED BY events_by_firm
           WHERE ${STREAM_FIRM} = ? AND position > ?
             AND type IN (SELECT value FROM json_each(?))
           ORDER BY position LIMIT ?`,
        )
        .raw(),
      pageCount: this.db
        .prepare('SELECT count(*) FROM events WHERE position > ? AND position <= ?')
        .pluck(),
      pageOfTypes: this.db
        .prepare(
          `SELECT position, stream_id, revision, type, data, metadata FROM events
           WHERE position > ? AND position <= ? AND type IN (SELECT value FROM json_each(?))
           ORDER BY position`,
        )
        .raw(),
    };
    // A nested better-sqlite3 transaction is a SAVEPOINT: a refused append (all the
    // streams of a multi-stream append together) rolls back alone and the rest of
    // the group still commits.
    this.appendOne = this.db.transaction((request: PendingAppend) =>
      this.appendInTransaction(request.appends),
    );
    this.lastDataVersion = Number(this.db.pragma('data_version', { simple: true }));
    this.tail.from = this.tail.head = this.statements.head.get() as bigint;
  }

  streamChangedSince(streamId: string, position: bigint): boolean | undefined {
    this.checkTail();
    if (position < this.tail.from) return undefined;
    return (this.tail.lastChange.get(streamId) ?? 0n) > position;
  }

  checkedHead(): bigint {
    this.checkTail();
    return this.tail.head;
  }

  /**
   * Reads the appends committed since the last check, by any connection. Once
   * per turn: every request answered in this turn arrived before the check
   * (its bytes were read in this turn or an earlier one), so it sees every
   * append committed before it was sent. The turn ends at the next tick; this
   * connection's own commits end it at once (flush).
   */
  private checkTail(): void {
    if (this.tail.checkedThisTurn || this.closed) return;
    const rows = this.statements.tail.all(this.tail.head) as Array<[bigint, string]>;
    for (const [position, streamId] of rows) this.tail.lastChange.set(streamId, position);
    if (rows.length > 0) this.tail.head = rows[rows.length - 1][0];
    // Bounded: past this many streams, forget them all; states checked before are read again.
    if (this.tail.lastChange.size > MAX_TRACKED_STREAMS) {
      this.tail.lastChange.clear();
      this.tail.from = this.tail.head;
    }
    this.tail.checkedThisTurn = true;
    process.nextTick(() => {
      this.tail.checkedThisTurn = false;
    });
  }

  async appendToStream(
    streamId: string,
    events: NewEvent[],
    expectedRevision: ExpectedRevision,
  ): Promise<AppendResult> {
    if (events.length === 0) throw new Error('Nothing to append');
    const [result] = await this.appendToStreams([{ streamId, events, expectedRevision }]);
    return result;
  }

  appendToStreams(appends: readonly StreamAppend[]): Promise<AppendResult[]> {
    if (this.closed) return Promise.reject(new Error('Event store is closed'));
    if (!appends.some((part) => part.events.length > 0)) {
      return Promise.reject(new Error('Nothing to append'));
    }
    if (new Set(appends.map((part) => part.streamId)).size !== appends.length) {
      return Promise.reject(new Error('A multi-stream append names a stream twice'));
    }
    return new Promise((resolve, reject) => {
      this.queue.push({ appends, resolve, reject });
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  multiStreamAtomicity(): Promise<'atomic'> {
    return Promise.resolve('atomic');
  }

  readCommand(streamId: string, commandId: string): Promise<RecordedEvent[]> {
    const rows = this.statements.byCommand.all(commandId, streamId) as EventRow[];
    return Promise.resolve(rows.map(toRecordedEvent));
  }

  private flush(): void {
    const batch = this.queue;
    this.queue = [];
    this.flushScheduled = false;
    // close() may have flushed this group already; the scheduled turn then finds nothing.
    if (batch.length === 0 || this.closed) return;
    const outcomes: Array<{ result?: AppendResult[]; error?: unknown }> = [];
    try {
      this.db
        .transaction(() => {
          outcomes.length = 0;
          for (const request of batch) {
            try {
              outcomes.push({ result: this.appendOne(request) });
            } catch (error) {
              if (
                error instanceof WrongExpectedRevisionError ||
                error instanceof DuplicateEventIdError ||
                error instanceof UnhashableEventError
              ) {
                outcomes.push({ error });
              } else {
                throw error;
              }
            }
          }
        })
        .immediate();
    } catch (error) {
      for (const request of batch) request.reject(error);
      return;
    }
    // Only now is the group durable: answer the callers, then wake the subscribers.
    this.tail.checkedThisTurn = false;
    batch.forEach((request, index) => {
      const outcome = outcomes[index];
      if (outcome.result) request.resolve(outcome.result);
      else request.reject(outcome.error);
    });
    this.wakeWaiters();
  }

  /**
   * Inside the group's transaction, in the caller's savepoint: a retried write
   * (all its event ids already stored) answers the first result; otherwise
   * every part's revision is checked before anything is inserted.
   */
  private appendInTransaction(appends: readonly StreamAppend[]): AppendResult[] {
    const earlier = appends.map((part) => this.findEarlierAppend(part.streamId, part.events));
    const written = appends.filter((part, index) => part.events.length > 0 && earlier[index]);
    if (written.length > 0) {
      if (written.length !== appends.filter((part) => part.events.length > 0).length) {
        const part = appends.find(
          (candidate, index) => candidate.events.length > 0 && !earlier[index],
        )!;
        throw new DuplicateEventIdError(part.events[0].metadata.eventId);
      }
      return appends.map(
        (part, index) =>
          earlier[index] ?? {
            nextExpectedRevision: this.revisionOf(part.streamId) ?? -1n,
            position: 0n,
          },
      );
    }
    const heads = appends.map((part) => {
      const head = this.headOf(part.streamId);
      requireRevision(part.streamId, part.expectedRevision, head.revision);
      return head;
    });
    // Linked before anything is inserted: an event that cannot be hashed refuses its whole append.
    const linked = appends.map((part, index) =>
      this.options.chainAppends === false || part.events.length === 0
        ? part.events
        : linkEvents(
            part.streamId,
            { revision: heads[index].revision ?? -1n, hash: heads[index].hash },
            part.events,
          ),
    );
    return appends.map((part, index) =>
      this.insert(part.streamId, linked[index], heads[index].revision),
    );
  }

  private revisionOf(streamId: string): bigint | null {
    return this.statements.streamRevision.get(streamId) as bigint | null;
  }

  private headOf(streamId: string): StreamHead {
    const row = this.statements.streamHead.get(streamId) as
      { revision: bigint; hash: unknown } | undefined;
    if (!row) return { revision: null, hash: null };
    const hash = typeof row.hash === 'string' && HASH.test(row.hash) ? row.hash : null;
    return { revision: row.revision, hash };
  }

  private insert(
    streamId: string,
    events: readonly NewEvent[],
    current: bigint | null,
  ): AppendResult {
    let revision = current ?? -1n;
    let position = 0n;
    for (const event of events) {
      revision += 1n;
      const info = this.statements.insert.run(
        event.metadata.eventId,
        streamId,
        revision,
        event.type,
        JSON.stringify(event.data),
        JSON.stringify(event.metadata),
      );
      position = BigInt(info.lastInsertRowid);
    }
    if (events.length === 0) return { nextExpectedRevision: revision, position };
    return { nextExpectedRevision: revision, position, alreadyStored: false };
  }

  /**
   * A retried append (the same event ids, same stream, same order) answers what
   * the first one answered, flagged `alreadyStored`, without checking the
   * expected revision. Any other reuse of an event id is refused.
   */
  private findEarlierAppend(
    streamId: string,
    events: readonly NewEvent[],
  ): AppendResult | undefined {
    if (events.length === 0) return undefined;
    const rows = events.map(
      (event) =>
        this.statements.byEventId.get(event.metadata.eventId) as
          { position: bigint; stream_id: string; revision: bigint } | undefined,
    );
    if (rows.every((row) => row === undefined)) return undefined;
    const first = rows[0];
    const sameBatch =
      first !== undefined &&
      rows.every(
        (row, index) =>
          row !== undefined &&
          row.stream_id === streamId &&
          row.revision === first.revision + BigInt(index),
      );
    if (!sameBatch) {
      const reused = events[rows.findIndex((row) => row !== undefined)];
      throw new DuplicateEventIdError(reused.metadata.eventId);
    }
    const last = rows[rows.length - 1]!;
    return { nextExpectedRevision: last.revision, position: last.position, alreadyStored: true };
  }

  readStream(streamId: string, options: ReadStreamOptions = {}): Promise<RecordedEvent[]> {
    const limit = options.maxCount ?? Number.MAX_SAFE_INTEGER;
    const rows =
      options.direction === 'backwards'
        ? this.statements.readBackwards.all(
            streamId,
            options.fromRevision ?? BigInt(Number.MAX_SAFE_INTEGER),
            limit,
          )
        : this.statements.readForwards.all(streamId, options.fromRevision ?? 0n, limit);
    return Promise.resolve((rows as EventRow[]).map(toRecordedEvent));
  }

  readAll(options: ReadAllOptions = {}): Promise<RecordedEvent[]> {
    return Promise.resolve(this.readAllNow(options.after ?? 0n, options.maxCount ?? 1000));
  }

  private readAllNow(after: bigint, maxCount: number): RecordedEvent[] {
    return (this.statements.readAll.all(after, maxCount) as EventRow[]).map(toRecordedEvent);
  }

  /**
   * Positions are allocated in commit order, so everything at or below the
   * head read first is in place when the range is read.
   */
  readPage(options: ReadPageOptions): Promise<LogPage> {
    const head = this.statements.head.get() as bigint;
    const end = options.after + BigInt(Math.max(1, options.maxCount));
    const through = head < end ? head : end;
    if (through <= options.after) {
      return Promise.resolve({ events: [], through: options.after, scanned: 0 });
    }
    const rows = (
      options.types
        ? this.statements.pageOfTypes.all(options.after, through, JSON.stringify(options.types))
        : this.statements.page.all(options.after, through)
    ) as PageRow[];
    const events = new Array<RecordedEvent>(rows.length);
    for (let i = 0; i < rows.length; i++) {
      const row = rows[i];
      events[i] = fromJsonText(
        { position: row[0], streamId: row[1], revision: row[2], type: row[3] },
        row[4],
        row[5],
      );
    }
    const scanned = options.types
      ? Number(this.statements.pageCount.get(options.after, through) as bigint)
      : rows.length;
    return Promise.resolve({ events, through, scanned });
  }

  readFirm(firmId: string, options: ReadFirmOptions): Promise<FirmPage> {
    const limit = Math.max(1, options.maxCount);
    const rows = (
      options.types
        ? this.statements.firmOfTypes.all(
            firmId,
            options.after,
            JSON.stringify(options.types),
            limit,
          )
        : this.statements.firm.all(firmId, options.after, limit)
    ) as PageRow[];
    const events: FirmEvent[] = [];
    for (const row of rows) {
      const event: FirmEvent = fromJsonText(
        { position: row[0], streamId: row[1], revision: row[2], type: row[3] },
        row[4],
        row[5],
      );
      if (!ofFirm(event, firmId)) continue;
      if (event.corrupt === undefined) event.storedJson = { data: row[4], metadata: row[5] };
      events.push(event);
    }
    const through = rows.length > 0 ? rows[rows.length - 1][0] : options.after;
    return Promise.resolve({ events, through });
  }

  headPosition(): Promise<bigint> {
    return Promise.resolve(BigInt(this.statements.head.get() as bigint));
  }

  subscribeToAll(options: SubscribeOptions): StoreSubscription {
    const loop = new SubscriptionLoop(options, {
      read: (after, max) => Promise.resolve(this.sharedReads.read(after, max)),
      waitForChange: () => this.waitForChange(),
    });
    this.loops.add(loop);
    void loop.start().finally(() => this.loops.delete(loop));
    return { stop: () => loop.stop() };
  }

  /**
   * Resolves on the next commit: immediately for commits of this process, and
   * for other processes' commits when the WAL file changes (inotify) or, as a
   * fallback, when SQLite's data_version moves. No busy loop reads the log.
   */
  private waitForChange(): Promise<void> {
    return new Promise((resolve) => {
      this.waiters.add(resolve);
      this.watchForeignCommits();
    });
  }

  private wakeWaiters(): void {
    const waiters = [...this.waiters];
    this.waiters.clear();
    for (const wake of waiters) wake();
  }

  private watchForeignCommits(): void {
    if (this.foreignCheck || this.closed) return;
    const check = () => {
      if (this.closed) return;
      const version = Number(this.db.pragma('data_version', { simple: true }));
      if (version !== this.lastDataVersion) {
        this.lastDataVersion = version;
        this.wakeWaiters();
      }
    };
    this.foreignCheck = setInterval(check, this.options.foreignCommitCheckMs ?? 200);
    this.foreignCheck.unref();
    try {
      this.walWatcher = watch(`${this.file}-wal`, { persistent: false }, () => check());
      this.walWatcher.on('error', () => undefined);
    } catch {
      // No WAL file yet or no inotify: the interval still notices foreign commits.
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    await Promise.all([...this.loops].map((loop) => loop.stop()));
    // Let queued appends land before the connection goes away.
    if (this.queue.length > 0) this.flush();
    this.closed = true;
    clearInterval(this.foreignCheck);
    this.walWatcher?.close();
    this.wakeWaiters();
    this.db.close();
  }
}

function requireRevision(
  streamId: string,
  expectedRevision: ExpectedRevision,
  current: bigint | null,
): void {
  const matches =
    expectedRevision === 'any' ||
    (expectedRevision === 'no_stream' && current === null) ||
    (expectedRevision === 'stream_exists' && current !== null) ||
    (typeof expectedRevision === 'bigint' && current === expectedRevision);
  if (!matches) {
    throw new WrongExpectedRevisionError(streamId, expectedRevision, current ?? 'no_stream');
  }
}

/** Never throws: a row that cannot be read comes back marked `corrupt` (see stored-event.ts). */
function toRecordedEvent(row: EventRow): RecordedEvent {
  return fromJsonText(
    {
      position: BigInt(row.position),
      streamId: row.stream_id,
      revision: BigInt(row.revision),
      type: row.type,
    },
    row.data,
    row.metadata,
  );
}
