import Database from 'better-sqlite3';
import {
  collectionSpec,
  CollectionSpec,
  FindQuery,
  IndexValue,
  physicalName,
  ProjectionCheckpoint,
  ProjectionCommit,
  ReadModelDocument,
  ReadModelSchema,
  ReadModelStore,
  ReadModelTarget,
  RecordedSkip,
} from './read-model-store.port';

interface CheckpointRow {
  projection: string;
  generation: number;
  version: number;
  position: string;
  failure: string | null;
}

class Conflict extends Error {}

/**
 * Read models in one SQLite file (WAL). A collection is a WITHOUT ROWID table
 * `(id, doc, f_<field>...)`: the document as JSON plus its indexed fields as
 * columns. A commit is one IMMEDIATE transaction holding the document writes
 * and the checkpoint update, so a crash keeps both or neither.
 *
 * `synchronous=NORMAL`: a power cut may lose the last commits, never half of
 * one; the lost events are simply applied again from the older checkpoint.
 */
export class SqliteReadModelStore implements ReadModelStore {
  readonly kind = 'sqlite' as const;
  private readonly db: Database.Database;
  private readonly schemas = new Map<string, ReadModelSchema>();
  private readonly statements = new Map<string, Database.Statement>();
  private closed = false;

  constructor(file: string) {
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

  prepare(schema: ReadModelSchema, generation: number): Promise<void> {
    this.schemas.set(schema.projection, schema);
    const target = { projection: schema.projection, generation };
    this.db.transaction(() => {
      for (const spec of schema.collections) {
        const table = physicalName(target, spec.name);
        const columns = spec.fields.map((field) => `, ${column(field)}`).join('');
        this.db.exec(
          `CREATE TABLE IF NOT EXISTS "${table}" (id TEXT PRIMARY KEY, doc TEXT NOT NULL${columns}) WITHOUT ROWID`,
        );
        spec.indexes.forEach((fields, index) => {
          this.db.exec(
            `CREATE INDEX IF NOT EXISTS "${table}_i${index}" ON "${table}" (${fields.map(column).join(', ')})`,
          );
        });
      }
    })();
    return Promise.resolve();
  }

  dropGeneration(schema: ReadModelSchema, generation: number): Promise<void> {
    const target = { projection: schema.projection, generation };
    this.db.transaction(() => {
      for (const spec of schema.collections) {
        this.db.exec(`DROP TABLE IF EXISTS "${physicalName(target, spec.name)}"`);
      }
      this.statement(
        'DELETE FROM projection_checkpoints WHERE projection = ? AND generation = ?',
      ).run(schema.projection, generation);
    })();
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

  commit(target: ReadModelTarget, commit: ProjectionCommit): Promise<'committed' | 'conflict'> {
    if (this.closed) return Promise.reject(new Error('Read-model store is closed'));
    const write = this.db.transaction(() => {
      const moved = this.statement(
        `UPDATE projection_checkpoints SET position = ?, failure = ?, updated_at = ?
         WHERE projection = ? AND generation = ? AND position = ?`,
      ).run(
        String(commit.position),
        commit.failure ? JSON.stringify(commit.failure) : null,
        new Date().toISOString(),
        target.projection,
        target.generation,
        String(commit.expected),
      );
      if (moved.changes !== 1) throw new Conflict();
      for (const change of commit.changes) {
        const spec = this.spec(target, change.collection);
        const table = physicalName(target, change.collection);
        if (change.doc === null) {
          this.statement(`DELETE FROM "${table}" WHERE id = ?`).run(change.id);
        } else {
          this.upsert(table, spec).run(
            change.id,
            JSON.stringify(change.doc),
            ...spec.fields.map((field) => indexValue(change.doc![field])),
          );
        }
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

  private upsert(table: string, spec: CollectionSpec): Database.Statement {
    const columns = ['id', 'doc', ...spec.fields.map(column)];
    const updates = columns.slice(1).map((c) => `${c} = excluded.${c}`);
    return this.statement(
      `INSERT INTO "${table}" (${columns.join(', ')}) VALUES (${columns.map(() => '?').join(', ')})
       ON CONFLICT (id) DO UPDATE SET ${updates.join(', ')}`,
    );
  }

  recordSkip(projection: string, position: bigint, note: string): Promise<void> {
    this.statement(
      `INSERT INTO projection_skips (projection, position, note, recorded_at) VALUES (?, ?, ?, ?)
       ON CONFLICT DO NOTHING`,
    ).run(projection, String(position), note, new Date().toISOString());
    return Promise.resolve();
  }

  skips(projection: string): Promise<RecordedSkip[]> {
    const rows = this.statement(
      'SELECT * FROM projection_skips WHERE projection = ? ORDER BY CAST(position AS INTEGER)',
    ).all(projection) as {
      projection: string;
      position: string;
      note: string;
      recorded_at: string;
    }[];
    return Promise.resolve(
      rows.map((row) => ({
        projection: row.projection,
        position: BigInt(row.position),
        note: row.note,
        recordedAt: row.recorded_at,
      })),
    );
  }

  get(
    target: ReadModelTarget,
    collection: string,
    id: string,
  ): Promise<ReadModelDocument | undefined> {
    return Promise.resolve(this.getNow(target, collection, id));
  }

  /** Synchronous read, for the projection engine's unit of work. */
  getNow(target: ReadModelTarget, collection: string, id: string): ReadModelDocument | undefined {
    this.spec(target, collection);
    const doc = this.statement(`SELECT doc FROM "${physicalName(target, collection)}" WHERE id = ?`)
      .pluck()
      .get(id) as string | undefined;
    return doc === undefined ? undefined : (JSON.parse(doc) as ReadModelDocument);
  }

  getMany(
    target: ReadModelTarget,
    collection: string,
    ids: readonly string[],
  ): Promise<Map<string, ReadModelDocument>> {
    const found = new Map<string, ReadModelDocument>();
    for (const id of ids) {
      const doc = this.getNow(target, collection, id);
      if (doc) found.set(id, doc);
    }
    return Promise.resolve(found);
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
    if (query.contains && query.contains.text !== '') {
      where.push(`(${query.contains.fields.map((f) => `instr(${known(f)}, ?) > 0`).join(' OR ')})`);
      for (let i = 0; i < query.contains.fields.length; i++) params.push(query.contains.text);
    }
    const order = query.orderBy.map(known);
    if (query.after) {
      where.push(`(${order.join(', ')}) > (${order.map(() => '?').join(', ')})`);
      params.push(...query.after);
    }
    const table = physicalName(target, collection);
    // Ids first, on the index alone; then the documents of the page only.
    const ids = this.statement(
      `SELECT id FROM "${table}" ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
       ORDER BY ${order.join(', ')} LIMIT ?`,
    )
      .pluck()
      .all(...params, query.limit) as string[];
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

  saveProcessCheckpoint(name: string, position: bigint): Promise<void> {
    this.statement(
      `INSERT INTO process_checkpoints (name, position, updated_at) VALUES (?, ?, ?)
       ON CONFLICT (name) DO UPDATE SET position = excluded.position, updated_at = excluded.updated_at`,
    ).run(name, String(position), new Date().toISOString());
    return Promise.resolve();
  }

  close(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      this.db.close();
    }
    return Promise.resolve();
  }
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
    failure: row.failure ? JSON.parse(row.failure) : null,
  };
}
