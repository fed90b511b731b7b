import Database from 'better-sqlite3';
import type { Worker } from 'node:worker_threads';
import {
  AcquiredProcessLease,
  collectionSpec,
  CollectionSpec,
  FindQuery,
  IndexValue,
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
import { CLOSE, startWriterThread, ThreadAnswer, ThreadCommit } from './sqlite-writer-thread';

interface CheckpointRow {
  projection: string;
  generation: number;
  version: number;
  position: string;
}

interface QuarantineRow {
  consumer: string;
  generation: number;
  position: string;
  event_type: string;
  stream_id: string | null;
  reason: string;
  at: string;
}

/** Quarantined events are written with the checkpoint that passes them (one transaction). */
const QUARANTINE_SQL = `INSERT INTO consumer_quarantine
  (consumer, generation, position, event_type, stream_id, reason, at) VALUES (?, ?, ?, ?, ?, ?, ?)
  ON CONFLICT (consumer, generation, position) DO UPDATE SET
    event_type = excluded.event_type, stream_id = excluded.stream_id,
    reason = excluded.reason, at = excluded.at`;

const quarantineParams = (q: QuarantinedEvent) => [
  q.consumer,
  q.generation,
  String(q.position),
  q.eventType,
  q.streamId,
  q.reason,
  q.at,
];

class Conflict extends Error {}

/**
 * Up to this many documents holding a searched text (in the whole collection),
 * a search reads them by the substring index and sorts them. Beyond, it walks
 * the order index testing each row, as it does for short texts: with one
 * document in 100 or more holding the text, a page of 50 comes within a few
 * thousand rows, sooner than the index would list every match. (A text common
 * in other firms and rare in this one walks this firm's rows: the index
 * cannot tell firms apart.)
 */
const FEW_HITS = 1000;

interface TableWriter {
  remove: Database.Statement;
  upsert(id: string, doc: ReadModelDocument): void;
}

export interface SqliteReadModelStoreOptions {
  /**
   * Commits run on a worker thread with its own connection, so the caller
   * goes on applying events while SQLite writes (rebuilds). The caller
   * serialises the documents; the worker binds and writes them. Reads on this
   * store see a commit once its promise has resolved, as always.
   */
  writerThread?: boolean;
}

/**
 * Read models in one SQLite file (WAL). A collection is a table
 * `(id, doc, f_<field>...)`: the document as JSON plus its indexed fields as
 * columns, with a unique index on id. Not a WITHOUT ROWID table: there every
 * interior page of the tree holds whole rows, and documents of a few hundred
 * bytes made a rebuild's inserts cost about twice as much (generations made
 * before this change keep their WITHOUT ROWID tables and are read the same
 * way). A commit is one IMMEDIATE transaction holding the document writes
 * and the checkpoint update, so a crash keeps both or neither.
 *
 * `synchronous=NORMAL`: a power cut may lose the last commits, never half of
 * one; the lost events are simply applied again from the older checkpoint.
 *
 * A collection with `search` fields has a substring index beside it: an FTS5
 * table `<table>_fts` (external content, trigram tokenizer) over those
 * columns, kept by triggers, so its rows change in the very transaction that
 * changes the documents and moves the checkpoint (on the writer thread too).
 * Such a table has an explicit rowid alias, `seq INTEGER PRIMARY KEY`, which
 * VACUUM keeps, so the index's rowids go on naming the same rows.
 */
export class SqliteReadModelStore implements ReadModelStore {
  readonly kind = 'sqlite' as const;
  private readonly db: Database.Database;
  private readonly schemas = new Map<string, ReadModelSchema>();
  private readonly statements = new Map<string, Database.Statement>();
  /** Per collection table: whether it has its substring index (found once, see `searchIndexOf`). */
  private readonly searchIndexes = new Map<string, boolean>();
  private closed = false;
  private writer:
    | {
        worker: Worker;
        seq: number;
        pending: Map<
          number,
          { resolve: (o: 'committed' | 'conflict') => void; reject: (e: Error) => void }
        >;
      }
    | undefined;

  constructor(
    private readonly file: string,
    private readonly options: SqliteReadModelStoreOptions = {},
  ) {
    this.db = new Database(file);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma('busy_timeout = 10000');
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS projection_checkpoints (
        projection TEXT NOT NULL,
        generation INTEGER NOT NULL,
        version    INTEGER NOT NULL,
        position   TEXT NOT NULL,
        failure    TEXT,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (projection, generation)
      );
      CREATE TABLE IF NOT EXISTS projection_active (
        projection TEXT PRIMARY KEY,
        generation INTEGER NOT NULL
      );
      CREATE TABLE IF NOT EXISTS projection_skips (
        projection  TEXT NOT NULL,
        position    TEXT NOT NULL,
        note        TEXT NOT NULL,
        recorded_at TEXT NOT NULL,
        PRIMARY KEY (projection, position)
      );
      CREATE TABLE IF NOT EXISTS process_checkpoints (
        name       TEXT PRIMARY KEY,
        position   TEXT NOT NULL,
        updated_at TEXT NOT NULL
      );
      -- Events consumers passed over (DESIGN §6); a process manager's generation is 0.
      CREATE TABLE IF NOT EXISTS consumer_quarantine (
        consumer   TEXT NOT NULL,
        generation INTEGER NOT NULL,
        position   TEXT NOT NULL,
        event_type TEXT NOT NULL,
        stream_id  TEXT,
        reason     TEXT NOT NULL,
        at         TEXT NOT NULL,
        PRIMARY KEY (consumer, generation, position)
      );
      CREATE TABLE IF NOT EXISTS process_failures (
        name       TEXT PRIMARY KEY,
        position   TEXT NOT NULL,
        event_type TEXT NOT NULL,
        stream_id  TEXT,
        error      TEXT NOT NULL,
        attempts   INTEGER NOT NULL,
        since      TEXT NOT NULL,
        at         TEXT NOT NULL
      );
      CREATE TABLE IF NOT EXISTS process_replays (
        name         TEXT NOT NULL,
        position     TEXT NOT NULL,
        requested_at TEXT NOT NULL,
        PRIMARY KEY (name, position)
      );
      -- One row per process manager: who runs it, until when (ms since the epoch, this
      -- machine's clock: every instance on this file runs on this machine).
      CREATE TABLE IF NOT EXISTS process_leases (
        name        TEXT PRIMARY KEY,
        owner       TEXT NOT NULL,
        term        INTEGER NOT NULL,
        expires_at  INTEGER NOT NULL,
        acquired_at TEXT NOT NULL
      );
    `);
  }

  private statement(sql: string): Database.Statement {
    let statement = this.statements.get(sql);
    if (!statement) {
      statement = this.db.prepare(sql);
      this.statements.set(sql, statement);
    }
    return statement;
  }

  private spec(target: ReadModelTarget, collection: string): CollectionSpec {
    const schema = this.schemas.get(target.projection);
    if (!schema) throw new Error(`Read model ${target.projection} was not prepared`);
    return collectionSpec(schema, collection);
  }

  prepare(
    schema: ReadModelSchema,
    generation: number,
    options: { indexes?: boolean } = {},
  ): Promise<void> {
    this.schemas.set(schema.projection, schema);
    const target = { projection: schema.projection, generation };
    // IMMEDIATE: the write lock first. A deferred transaction reads the schema, then its
    // first write fails at once with SQLITE_BUSY (busy_timeout does not apply) when another
    // process committed in between: the running service, while a rebuild prepares beside it.
    this.db
      .transaction(() => {
        for (const spec of schema.collections) {
          const table = physicalName(target, spec.name);
          const columns = spec.fields.map((field) => `, ${column(field)}`).join('');
          const seq = spec.search?.length ? 'seq INTEGER PRIMARY KEY, ' : '';
          this.db.exec(
            `CREATE TABLE IF NOT EXISTS "${table}" (${seq}id TEXT NOT NULL ${seq ? 'UNIQUE' : 'PRIMARY KEY'}, doc TEXT NOT NULL${columns})`,
          );
          // A generation made by an older version of the projection, still served while the
          // new version's generation is built, is written by the new code: give it the new fields.
          const existing = new Set(
            (this.db.pragma(`table_info("${table}")`) as Array<{ name: string }>).map(
              (c) => c.name,
            ),
          );
          for (const field of spec.fields) {
            if (!existing.has(column(field))) {
              this.db.exec(`ALTER TABLE "${table}" ADD COLUMN ${column(field)}`);
            }
          }
          if (options.indexes === false) continue;
          spec.indexes.forEach((fields, index) => {
            this.db.exec(
              `CREATE INDEX IF NOT EXISTS "${table}_i${index}" ON "${table}" (${fields.map(column).join(', ')})`,
            );
          });
          if (spec.search?.length && existing.has('seq'))
            this.createSearchIndex(table, spec.search);
        }
      })
      .immediate();
    for (const spec of schema.collections)
      this.searchIndexes.delete(physicalName(target, spec.name));
    return Promise.resolve();
  }

  /**
   * The substring index of a collection (see the class comment), filled from
   * the documents already written when it is new: a rebuild loads its
   * documents first and indexes them once, at the end. Tables of generations
   * made before `seq` existed get none: their searches walk the compound index.
   */
  private createSearchIndex(table: string, fields: readonly string[]): void {
    const fts = `${table}_fts`;
    const known = this.db
      .prepare('SELECT 1 FROM sqlite_master WHERE type = ? AND name = ?')
      .get('table', fts);
    if (known) return;
    const columns = fields.map(column);
    const values = (row: 'new' | 'old') => columns.map((c) => `${row}.${c}`).join(', ');
    const remove = `INSERT INTO "${fts}" ("${fts}", rowid, ${columns.join(', ')}) VALUES ('delete', old.seq, ${values('old')});`;
    const add = `INSERT INTO "${fts}" (rowid, ${columns.join(', ')}) VALUES (new.seq, ${values('new')});`;
    // case_sensitive 1: the text is folded already, and the tokenizer's own folding
    // (ASCII and a few scripts only) would make the index answer other than a plain scan.
    this.db.exec(`
      CREATE VIRTUAL TABLE "${fts}" USING fts5(${columns.join(', ')},
        content = '${table}', content_rowid = 'seq', tokenize = 'trigram case_sensitive 1');
      CREATE TRIGGER "${fts}_insert" AFTER INSERT ON "${table}" BEGIN ${add} END;
      CREATE TRIGGER "${fts}_delete" AFTER DELETE ON "${table}" BEGIN ${remove} END;
      CREATE TRIGGER "${fts}_update" AFTER UPDATE OF ${columns.join(', ')} ON "${table}"
        WHEN ${columns.map((c) => `old.${c} IS NOT new.${c}`).join(' OR ')}
        BEGIN ${remove} ${add} END;
      INSERT INTO "${fts}" ("${fts}") VALUES ('rebuild');
    `);
  }

  /** Whether a collection table has its substring index; asked of SQLite once per table. */
  private searchIndexOf(table: string): boolean {
    let indexed = this.searchIndexes.get(table);
    if (indexed === undefined) {
      indexed =
        this.statement('SELECT 1 FROM sqlite_master WHERE type = ? AND name = ?').get(
          'table',
          `${table}_fts`,
        ) !== undefined;
      this.searchIndexes.set(table, indexed);
    }
    return indexed;
  }

  dropGeneration(schema: ReadModelSchema, generation: number): Promise<void> {
    const target = { projection: schema.projection, generation };
    this.db
      .transaction(() => {
        for (const spec of schema.collections) {
          const table = physicalName(target, spec.name);
          this.db.exec(`DROP TABLE IF EXISTS "${table}_fts"; DROP TABLE IF EXISTS "${table}"`);
          this.searchIndexes.delete(table);
        }
        this.statement(
          'DELETE FROM projection_checkpoints WHERE projection = ? AND generation = ?',
        ).run(schema.projection, generation);
        this.statement('DELETE FROM consumer_quarantine WHERE consumer = ? AND generation = ?').run(
          schema.projection,
          generation,
        );
      })
      .immediate();
    // Statements on dropped tables are invalid now.
    for (const sql of [...this.statements.keys()]) {
      if (sql.includes(`rm_`)) this.statements.delete(sql);
    }
    return Promise.resolve();
  }

  createGeneration(projection: string, version: number): Promise<number> {
    const create = this.db.transaction(() => {
      const max = this.statement(
        'SELECT coalesce(max(generation), 0) AS g FROM projection_checkpoints WHERE projection = ?',
      ).get(projection) as { g: number };
      const active = this.statement(
        'SELECT generation FROM projection_active WHERE projection = ?',
      ).get(projection) as { generation: number } | undefined;
      const generation = Math.max(max.g, active?.generation ?? 0) + 1;
      this.statement(
        `INSERT INTO projection_checkpoints (projection, generation, version, position, failure, updated_at)
         VALUES (?, ?, ?, '0', NULL, ?)`,
      ).run(projection, generation, version, new Date().toISOString());
      return generation;
    });
    return Promise.resolve(create.immediate());
  }

  checkpoint(target: ReadModelTarget): Promise<ProjectionCheckpoint | undefined> {
    const row = this.statement(
      'SELECT * FROM projection_checkpoints WHERE projection = ? AND generation = ?',
    ).get(target.projection, target.generation) as CheckpointRow | undefined;
    return Promise.resolve(row && toCheckpoint(row));
  }

  listCheckpoints(): Promise<ProjectionCheckpoint[]> {
    const rows = this.statement(
      'SELECT * FROM projection_checkpoints ORDER BY projection, generation',
    ).all() as CheckpointRow[];
    return Promise.resolve(rows.map(toCheckpoint));
  }

  activeGenerations(): Promise<Map<string, number>> {
    const rows = this.statement('SELECT projection, generation FROM projection_active').all() as {
      projection: string;
      generation: number;
    }[];
    return Promise.resolve(new Map(rows.map((row) => [row.projection, row.generation])));
  }

  activate(target: ReadModelTarget): Promise<void> {
    this.statement(
      `INSERT INTO projection_active (projection, generation) VALUES (?, ?)
       ON CONFLICT (projection) DO UPDATE SET generation = excluded.generation`,
    ).run(target.projection, target.generation);
    return Promise.resolve();
  }

  activateFirst(target: ReadModelTarget): Promise<number> {
    const activate = this.db.transaction(() => {
      this.statement(
        `INSERT INTO projection_active (projection, generation) VALUES (?, ?)
         ON CONFLICT (projection) DO NOTHING`,
      ).run(target.projection, target.generation);
      const row = this.statement(
        'SELECT generation FROM projection_active WHERE projection = ?',
      ).get(target.projection) as { generation: number };
      return row.generation;
    });
    return Promise.resolve(activate.immediate());
  }

  commit(target: ReadModelTarget, commit: ProjectionCommit): Promise<'committed' | 'conflict'> {
    if (this.closed) return Promise.reject(new Error('Read-model store is closed'));
    if (this.options.writerThread) return this.commitOnThread(target, commit);
    const write = this.db.transaction(() => {
      // `failure` is where versions before quarantines kept a stopped projection's event.
      const moved = this.statement(
        `UPDATE projection_checkpoints SET position = ?, failure = NULL, updated_at = ?
         WHERE projection = ? AND generation = ? AND position = ?`,
      ).run(
        String(commit.position),
        new Date().toISOString(),
        target.projection,
        target.generation,
        String(commit.expected),
      );
      if (moved.changes !== 1) throw new Conflict();
      for (const record of commit.quarantined ?? []) {
        this.statement(QUARANTINE_SQL).run(quarantineParams(record));
      }
      const tables = new Map<string, TableWriter>();
      for (const change of commit.changes) {
        let table = tables.get(change.collection);
        if (!table) {
          table = this.tableWriter(target, change.collection);
          tables.set(change.collection, table);
        }
        if (change.doc === null) table.remove.run(change.id);
        else table.upsert(change.id, change.doc);
      }
    });
    try {
      write.immediate();
      return Promise.resolve('committed');
    } catch (error) {
      if (error instanceof Conflict) return Promise.resolve('conflict');
      return Promise.reject(error instanceof Error ? error : new Error(String(error)));
    }
  }

  private commitOnThread(
    target: ReadModelTarget,
    commit: ProjectionCommit,
  ): Promise<'committed' | 'conflict'> {
    const writer = this.writerThread();
    const tables = new Map<
      string,
      ThreadCommit['tables'][number] & { fields: readonly string[] }
    >();
    for (const change of commit.changes) {
      let table = tables.get(change.collection);
      if (!table) {
        const spec = this.spec(target, change.collection);
        const sql = upsertSql(physicalName(target, change.collection), spec);
        table = {
          upsert: sql,
          remove: `DELETE FROM "${physicalName(target, change.collection)}" WHERE id = ?`,
          width: 2 + spec.fields.length,
          rows: [],
          deletes: [],
          fields: spec.fields,
        };
        tables.set(change.collection, table);
      }
      const doc = change.doc;
      if (doc === null) {
        table.deletes.push(change.id);
        continue;
      }
      table.rows.push(change.id, JSON.stringify(doc));
      for (const field of table.fields) table.rows.push(indexValue(doc[field]));
    }
    const message: ThreadCommit = {
      seq: ++writer.seq,
      checkpoint: [
        String(commit.position),
        new Date().toISOString(),
        target.projection,
        target.generation,
        String(commit.expected),
      ],
      quarantine: (commit.quarantined ?? []).map(quarantineParams),
      quarantineSql: QUARANTINE_SQL,
      tables: [...tables.values()].map(({ fields: _fields, ...table }) => table),
    };
    return new Promise((resolve, reject) => {
      writer.pending.set(message.seq, { resolve, reject });
      writer.worker.postMessage(message);
    });
  }

  private writerThread() {
    if (this.writer) return this.writer;
    const worker = startWriterThread(this.file);
    const writer = {
      worker,
      seq: 0,
      pending: new Map<
        number,
        { resolve: (o: 'committed' | 'conflict') => void; reject: (e: Error) => void }
      >(),
    };
    const failAll = (error: Error) => {
      for (const waiter of writer.pending.values()) waiter.reject(error);
      writer.pending.clear();
    };
    worker.on('message', (answer: ThreadAnswer) => {
      const waiter = writer.pending.get(answer.seq);
      writer.pending.delete(answer.seq);
      if ('outcome' in answer) waiter?.resolve(answer.outcome);
      else waiter?.reject(new Error(answer.error));
    });
    worker.on('error', failAll);
    worker.on('exit', () => failAll(new Error('Read-model writer thread ended')));
    this.writer = writer;
    return writer;
  }

  /** Prepared statements for one collection, bound by an array reused for every row. */
  private tableWriter(target: ReadModelTarget, collection: string): TableWriter {
    const spec = this.spec(target, collection);
    const table = physicalName(target, collection);
    const upsert = this.statement(upsertSql(table, spec));
    const fields = spec.fields;
    const params: IndexValue[] = new Array<IndexValue>(2 + fields.length);
    return {
      remove: this.statement(`DELETE FROM "${table}" WHERE id = ?`),
      upsert: (id, doc) => {
        params[0] = id;
        params[1] = JSON.stringify(doc);
        for (let i = 0; i < fields.length; i++) params[i + 2] = indexValue(doc[fields[i]]);
        upsert.run(params);
      },
    };
  }

  recordSkip(consumer: string, position: bigint, note: string): Promise<void> {
    this.db
      .transaction(() => {
        this.statement(
          `INSERT INTO projection_skips (projection, position, note, recorded_at) VALUES (?, ?, ?, ?)
         ON CONFLICT DO NOTHING`,
        ).run(consumer, String(position), note, new Date().toISOString());
        this.statement('DELETE FROM consumer_quarantine WHERE consumer = ? AND position = ?').run(
          consumer,
          String(position),
        );
      })
      .immediate();
    return Promise.resolve();
  }

  removeSkip(consumer: string, position: bigint): Promise<void> {
    this.statement('DELETE FROM projection_skips WHERE projection = ? AND position = ?').run(
      consumer,
      String(position),
    );
    return Promise.resolve();
  }

  skips(consumer?: string): Promise<RecordedSkip[]> {
    // The table kept its first name: it holds process managers' skips too.
    const rows = this.statement(
      'SELECT * FROM projection_skips WHERE @consumer IS NULL OR projection = @consumer',
    ).all({ consumer: consumer ?? null }) as {
      projection: string;
      position: string;
      note: string;
      recorded_at: string;
    }[];
    return Promise.resolve(
      rows
        .map((row) => ({
          consumer: row.projection,
          position: BigInt(row.position),
          note: row.note,
          recordedAt: row.recorded_at,
        }))
        .sort((a, b) => compareText(a.consumer, b.consumer) || comparePositions(a, b)),
    );
  }

  quarantine(record: QuarantinedEvent): Promise<void> {
    this.statement(QUARANTINE_SQL).run(quarantineParams(record));
    return Promise.resolve();
  }

  quarantined(consumer?: string): Promise<QuarantinedEvent[]> {
    const rows = this.statement(
      `SELECT * FROM consumer_quarantine q WHERE (@consumer IS NULL OR q.consumer = @consumer)
       AND NOT EXISTS (SELECT 1 FROM projection_skips s
                       WHERE s.projection = q.consumer AND s.position = q.position)`,
    ).all({ consumer: consumer ?? null }) as QuarantineRow[];
    return Promise.resolve(
      rows
        .map((row): QuarantinedEvent => ({
          consumer: row.consumer,
          generation: Number(row.generation),
          position: BigInt(row.position),
          eventType: row.event_type,
          streamId: row.stream_id,
          reason: row.reason,
          at: row.at,
        }))
        .sort(
          (a, b) =>
            compareText(a.consumer, b.consumer) ||
            a.generation - b.generation ||
            comparePositions(a, b),
        ),
    );
  }

  releaseQuarantined(consumer: string, position: bigint): Promise<void> {
    this.statement('DELETE FROM consumer_quarantine WHERE consumer = ? AND position = ?').run(
      consumer,
      String(position),
    );
    return Promise.resolve();
  }

  saveProcessFailure(failure: ProcessFailure): Promise<void> {
    this.statement(
      `INSERT INTO process_failures (name, position, event_type, stream_id, error, attempts, since, at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (name) DO UPDATE SET position = excluded.position, event_type = excluded.event_type,
         stream_id = excluded.stream_id, error = excluded.error, attempts = excluded.attempts,
         since = excluded.since, at = excluded.at`,
    ).run(
      failure.name,
      String(failure.position),
      failure.eventType,
      failure.streamId,
      failure.error,
      failure.attempts,
      failure.since,
      failure.at,
    );
    return Promise.resolve();
  }

  clearProcessFailure(name: string): Promise<void> {
    this.statement('DELETE FROM process_failures WHERE name = ?').run(name);
    return Promise.resolve();
  }

  processFailures(): Promise<ProcessFailure[]> {
    const rows = this.statement('SELECT * FROM process_failures ORDER BY name').all() as Array<{
      name: string;
      position: string;
      event_type: string;
      stream_id: string | null;
      error: string;
      attempts: number;
      since: string;
      at: string;
    }>;
    return Promise.resolve(
      rows.map((row) => ({
        name: row.name,
        position: BigInt(row.position),
        eventType: row.event_type,
        streamId: row.stream_id,
        error: row.error,
        attempts: Number(row.attempts),
        since: row.since,
        at: row.at,
      })),
    );
  }

  requestReplay(name: string, position: bigint): Promise<void> {
    this.statement(
      `INSERT INTO process_replays (name, position, requested_at) VALUES (?, ?, ?)
       ON CONFLICT DO NOTHING`,
    ).run(name, String(position), new Date().toISOString());
    return Promise.resolve();
  }

  replayRequests(): Promise<ReplayRequest[]> {
    const rows = this.statement('SELECT * FROM process_replays').all() as Array<{
      name: string;
      position: string;
      requested_at: string;
    }>;
    return Promise.resolve(
      rows
        .map((row) => ({
          name: row.name,
          position: BigInt(row.position),
          requestedAt: row.requested_at,
        }))
        .sort((a, b) => compareText(a.name, b.name) || comparePositions(a, b)),
    );
  }

  clearReplayRequest(name: string, position: bigint): Promise<void> {
    this.statement('DELETE FROM process_replays WHERE name = ? AND position = ?').run(
      name,
      String(position),
    );
    return Promise.resolve();
  }

  get(
    target: ReadModelTarget,
    collection: string,
    id: string,
  ): Promise<ReadModelDocument | undefined> {
    this.spec(target, collection);
    const doc = this.statement(`SELECT doc FROM "${physicalName(target, collection)}" WHERE id = ?`)
      .pluck()
      .get(id) as string | undefined;
    return Promise.resolve(doc === undefined ? undefined : (JSON.parse(doc) as ReadModelDocument));
  }

  find(
    target: ReadModelTarget,
    collection: string,
    query: FindQuery,
  ): Promise<ReadModelDocument[]> {
    const spec = this.spec(target, collection);
    const known = (field: string) => {
      if (field !== 'id' && !spec.fields.includes(field)) {
        throw new Error(`${collection}.${field} is not an indexed field`);
      }
      return column(field);
    };
    const where: string[] = [];
    const params: IndexValue[] = [];
    for (const [field, value] of Object.entries(query.equals ?? {})) {
      if (value === null) where.push(`${known(field)} IS NULL`);
      else {
        where.push(`${known(field)} = ?`);
        params.push(value);
      }
    }
    const table = physicalName(target, collection);
    let from = `"${table}"`;
    const fromParams: IndexValue[] = [];
    if (query.contains && query.contains.text !== '') {
      const { fields, text } = query.contains;
      const columns = fields.map((field) => {
        if (!spec.search?.includes(field)) {
          throw new Error(`${collection}.${field} is not a searchable field`);
        }
        return known(field);
      });
      // Trigrams serve a text of three characters or more; a shorter one walks the
      // compound index (it matches many documents, so a page fills early).
      let scan = false;
      if ([...text].length >= 3 && this.searchIndexOf(table)) {
        const match = `{${columns.join(' ')}} : "${text.replace(/"/g, '""')}"`;
        const hits = this.statement(
          `SELECT rowid FROM "${table}_fts" WHERE "${table}_fts" MATCH ? LIMIT ${FEW_HITS + 1}`,
        )
          .pluck()
          .all(match) as number[];
        if (hits.length <= FEW_HITS) {
          // Few documents hold the text (none, often): read those rows and sort them. The
          // planner would rather walk the order index and test each row against the list,
          // which for a text nobody has walks all of the firm's rows.
          from = `(SELECT value AS hit FROM json_each(?)) AS hits CROSS JOIN "${table}" ON seq = hit`;
          fromParams.push(JSON.stringify(hits));
        } else {
          // Many do: walking the order index, testing each row, meets a page of them soon.
          scan = true;
        }
      } else {
        scan = true;
      }
      if (scan) {
        where.push(`(${columns.map((c) => `instr(${c}, ?) > 0`).join(' OR ')})`);
        for (let i = 0; i < columns.length; i++) params.push(text);
      }
    }
    const order = query.orderBy.map(known);
    if (query.after) {
      where.push(`(${order.join(', ')}) > (${order.map(() => '?').join(', ')})`);
      params.push(...query.after);
    }
    // Ids first, on the index alone; then the documents of the page only.
    const ids = this.statement(
      `SELECT id FROM ${from} ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
       ORDER BY ${order.join(', ')} LIMIT ?`,
    )
      .pluck()
      .all(...fromParams, ...params, query.limit) as string[];
    const byId = this.statement(`SELECT doc FROM "${table}" WHERE id = ?`).pluck();
    return Promise.resolve(
      ids.map((id) => JSON.parse(byId.get(id) as string) as ReadModelDocument),
    );
  }

  scan(
    target: ReadModelTarget,
    collection: string,
  ): Promise<Array<{ id: string; doc: ReadModelDocument }>> {
    this.spec(target, collection);
    const rows = this.statement(
      `SELECT id, doc FROM "${physicalName(target, collection)}" ORDER BY id`,
    ).all() as { id: string; doc: string }[];
    return Promise.resolve(
      rows.map((row) => ({ id: row.id, doc: JSON.parse(row.doc) as ReadModelDocument })),
    );
  }

  processCheckpoint(name: string): Promise<bigint | undefined> {
    const position = this.statement('SELECT position FROM process_checkpoints WHERE name = ?')
      .pluck()
      .get(name) as string | undefined;
    return Promise.resolve(position === undefined ? undefined : BigInt(position));
  }

  listProcessCheckpoints(): Promise<Array<{ name: string; position: bigint }>> {
    const rows = this.statement(
      'SELECT name, position FROM process_checkpoints ORDER BY name',
    ).all() as Array<{
      name: string;
      position: string;
    }>;
    return Promise.resolve(rows.map((row) => ({ name: row.name, position: BigInt(row.position) })));
  }

  acquireProcessLease(
    name: string,
    owner: string,
    ttlMs: number,
  ): Promise<AcquiredProcessLease | undefined> {
    // IMMEDIATE: the write lock is taken before the read, so two instances cannot both
    // see the lease free and both take it.
    const acquire = this.db.transaction(() => {
      const now = Date.now();
      const held = this.statement(
        'SELECT owner, term, expires_at FROM process_leases WHERE name = ?',
      ).get(name) as { owner: string; term: number; expires_at: number } | undefined;
      if (held && held.owner !== owner && held.expires_at > now) return undefined;
      const term = (held?.term ?? 0) + 1;
      this.statement(
        `INSERT INTO process_leases (name, owner, term, expires_at, acquired_at) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, term = excluded.term,
           expires_at = excluded.expires_at, acquired_at = excluded.acquired_at`,
      ).run(name, owner, term, now + ttlMs, new Date(now).toISOString());
      const position = this.statement('SELECT position FROM process_checkpoints WHERE name = ?')
        .pluck()
        .get(name) as string | undefined;
      return {
        name,
        owner,
        term,
        checkpoint: position === undefined ? undefined : BigInt(position),
      };
    });
    return Promise.resolve(acquire.immediate());
  }

  renewProcessLease(lease: ProcessLease, ttlMs: number): Promise<boolean> {
    const renewed = this.statement(
      'UPDATE process_leases SET expires_at = ? WHERE name = ? AND owner = ? AND term = ?',
    ).run(Date.now() + ttlMs, lease.name, lease.owner, lease.term);
    return Promise.resolve(renewed.changes === 1);
  }

  releaseProcessLease(lease: ProcessLease): Promise<void> {
    // The row stays, so the next holder's term is still one more than this one's.
    this.statement(
      'UPDATE process_leases SET expires_at = 0 WHERE name = ? AND owner = ? AND term = ?',
    ).run(lease.name, lease.owner, lease.term);
    return Promise.resolve();
  }

  holdsProcessLease(lease: ProcessLease, forAtLeastMs: number): Promise<boolean> {
    const held = this.statement(
      'SELECT 1 FROM process_leases WHERE name = ? AND owner = ? AND term = ? AND expires_at > ?',
    ).get(lease.name, lease.owner, lease.term, Date.now() + forAtLeastMs);
    return Promise.resolve(held !== undefined);
  }

  saveProcessCheckpoint(
    lease: ProcessLease,
    expected: bigint | undefined,
    position: bigint,
  ): Promise<boolean> {
    const save = this.db.transaction(() => {
      const holds = this.statement(
        'SELECT 1 FROM process_leases WHERE name = ? AND owner = ? AND term = ?',
      ).get(lease.name, lease.owner, lease.term);
      if (holds === undefined) return false;
      const now = new Date().toISOString();
      if (expected === undefined) {
        return (
          this.statement(
            `INSERT INTO process_checkpoints (name, position, updated_at) VALUES (?, ?, ?)
             ON CONFLICT (name) DO NOTHING`,
          ).run(lease.name, String(position), now).changes === 1
        );
      }
      return (
        this.statement(
          'UPDATE process_checkpoints SET position = ?, updated_at = ? WHERE name = ? AND position = ?',
        ).run(String(position), now, lease.name, String(expected)).changes === 1
      );
    });
    return Promise.resolve(save.immediate());
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const writer = this.writer;
    if (writer) {
      // Commits already sent are answered before the thread closes its connection.
      const ended = new Promise((resolve) => writer.worker.once('exit', resolve));
      writer.worker.postMessage(CLOSE);
      await ended;
    }
    this.db.close();
  }
}

function upsertSql(table: string, spec: CollectionSpec): string {
  const columns = ['id', 'doc', ...spec.fields.map(column)];
  const updates = columns.slice(1).map((c) => `${c} = excluded.${c}`);
  return `INSERT INTO "${table}" (${columns.join(', ')}) VALUES (${columns.map(() => '?').join(', ')})
       ON CONFLICT (id) DO UPDATE SET ${updates.join(', ')}`;
}

function column(field: string): string {
  if (field === 'id') return 'id';
  if (!/^[A-Za-z][A-Za-z0-9]*$/.test(field)) throw new Error(`Bad field name ${field}`);
  return `f_${field}`;
}

function indexValue(value: unknown): IndexValue {
  if (value === undefined || value === null) return null;
  if (typeof value === 'string' || typeof value === 'number') return value;
  if (typeof value === 'boolean') return value ? 1 : 0;
  return JSON.stringify(value);
}

function toCheckpoint(row: CheckpointRow): ProjectionCheckpoint {
  return {
    projection: row.projection,
    generation: Number(row.generation),
    version: Number(row.version),
    position: BigInt(row.position),
  };
}

const compareText = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** Positions are kept as text (KurrentDB's are unsigned 64-bit): compared as numbers. */
const comparePositions = (a: { position: bigint }, b: { position: bigint }) =>
  a.position < b.position ? -1 : a.position > b.position ? 1 : 0;
