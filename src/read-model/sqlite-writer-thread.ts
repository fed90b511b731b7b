import Database from 'better-sqlite3';
import { isMainThread, MessagePort, parentPort, Worker, workerData } from 'node:worker_threads';

/*
 * The read-model writer thread: SQLite commits of a rebuild run here, on a
 * connection of their own, while the main thread goes on applying events
 * (see SqliteReadModelStore's `writerThread`). The main thread serialises the
 * documents; this thread binds and writes them, one IMMEDIATE transaction per
 * commit, with the same compare-and-set on the checkpoint as the store.
 *
 * This module is both sides: `startWriterThread` (main thread) starts a
 * worker on this very file, which then serves commits (the check at the end).
 */

/** What the writer thread is sent for one commit: a table's upserts as flat rows (id, doc, fields...). */
export interface ThreadCommit {
  seq: number;
  /** UPDATE parameters: position, updated_at, projection, generation, expected position. */
  checkpoint: unknown[];
  quarantine: unknown[][];
  quarantineSql: string;
  tables: Array<{
    upsert: string;
    remove: string;
    width: number;
    rows: unknown[];
    deletes: string[];
  }>;
}

/** The answer to one commit: its outcome, or the error's message. */
export type ThreadAnswer =
  { seq: number; outcome: 'committed' | 'conflict' } | { seq: number; error: string };

/** Sent instead of a commit: answer what was sent before, close the connection, end. */
export const CLOSE = 'close';

const ROLE = 'read-model-writer';

/**
 * Starts a writer thread on the SQLite file. Production runs the compiled
 * `.js` beside this file (dist/); tests run this `.ts` source under ts-jest,
 * which a worker thread cannot share, so the thread compiles it through
 * ts-node's register (a dev dependency, never loaded in production).
 */
export function startWriterThread(file: string): Worker {
  const fromSource = __filename.endsWith('.ts');
  return new Worker(__filename, {
    workerData: { role: ROLE, file },
    // An 8 MB young generation (V8's default is several times that): the thread only
    // binds the rows it is sent and drops them. The rebuild's peak RSS, bounded at
    // 300 MB for 1,000,000 events, was 294-329 MB in six runs on a loaded machine,
    // 284-292 MB in three with this; 4 MB was no lower and cost that thread more
    // scavenging (docs/decisions/0021-rebuild-memory-and-shared-live-reads.md).
    resourceLimits: { maxYoungGenerationSizeMb: 8 },
    ...(fromSource
      ? { execArgv: ['--require', require.resolve('ts-node/register/transpile-only')] }
      : {}),
  });
}

function serve(port: MessagePort, file: string): void {
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.pragma('busy_timeout = 10000');
  // 12 MiB: bulk writes touch many pages of big tables.
  db.pragma('cache_size = -12288');
  // The WAL is checkpointed every 1,000 pages (SQLite's default), here, after this
  // thread's own commits. Every 20,000 made a rebuild about 6% faster, but left the
  // copying to whichever connection commits next: a running service's event loop.
  const statements = new Map<string, Database.Statement>();
  const statement = (sql: string) => {
    let found = statements.get(sql);
    if (!found) statements.set(sql, (found = db.prepare(sql)));
    return found;
  };
  const checkpoint = `UPDATE projection_checkpoints SET position = ?, failure = NULL, updated_at = ?
    WHERE projection = ? AND generation = ? AND position = ?`;
  const write = db.transaction((commit: ThreadCommit): 'committed' | 'conflict' => {
    if (statement(checkpoint).run(commit.checkpoint).changes !== 1) return 'conflict';
    for (const row of commit.quarantine) statement(commit.quarantineSql).run(row);
    for (const table of commit.tables) {
      const upsert = statement(table.upsert);
      // One parameter array for every row of the table: no array per row.
      const params = new Array<unknown>(table.width);
      for (let i = 0; i < table.rows.length; i += table.width) {
        for (let j = 0; j < table.width; j++) params[j] = table.rows[i + j];
        upsert.run(params);
      }
      const remove = statement(table.remove);
      for (const id of table.deletes) remove.run(id);
    }
    return 'committed';
  });
  port.on('message', (commit: ThreadCommit | typeof CLOSE) => {
    if (commit === CLOSE) {
      db.close();
      port.close();
      return;
    }
    let answer: ThreadAnswer;
    try {
      answer = { seq: commit.seq, outcome: write.immediate(commit) };
    } catch (error) {
      answer = { seq: commit.seq, error: error instanceof Error ? error.message : String(error) };
    }
    port.postMessage(answer);
  });
}

const started = workerData as { role?: string; file?: string } | null;
if (!isMainThread && parentPort && started?.role === ROLE && started.file) {
  serve(parentPort, started.file);
}
