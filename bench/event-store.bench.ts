import Database from 'better-sqlite3';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NewEvent } from '../src/event-store/event-store.port';
import { SqliteEventStore } from '../src/event-store/sqlite-event-store';

/**
 * Durable single-event appends on the embedded store, beside the ceiling the
 * disk allows: raw better-sqlite3 single-row transactions with the same
 * pragmas (WAL, synchronous=FULL), measured in the same run on the same disk.
 *   npm run bench            (BENCH_N=3000 to change the count)
 */
const N = Number(process.env.BENCH_N ?? 2000);
const CONCURRENCY = 50;

function event(i: number): NewEvent {
  const id = randomUUID();
  return {
    type: 'BenchmarkEvent',
    data: { i, note: 'a payload about the size of a real event', userId: `user-${i}` },
    metadata: {
      eventId: id,
      firmId: 'bench',
      actor: { id: 'bench', role: 'system' },
      correlationId: id,
      causationId: id,
      commandId: id,
      occurredAt: new Date().toISOString(),
      schemaVersion: 1,
    },
  };
}

function rate(count: number, startedAt: bigint): number {
  return Math.round(count / (Number(process.hrtime.bigint() - startedAt) / 1e9));
}

function rawTransactions(dir: string): number {
  const db = new Database(join(dir, 'raw.sqlite'));
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT UNIQUE, data TEXT)');
  const insert = db.prepare('INSERT INTO t (event_id, data) VALUES (?, ?)');
  const oneRow = db.transaction((i: number) => insert.run(randomUUID(), JSON.stringify(event(i))));
  const started = process.hrtime.bigint();
  for (let i = 0; i < N; i++) oneRow.immediate(i);
  const result = rate(N, started);
  db.close();
  return result;
}

async function sequentialAppends(dir: string): Promise<number> {
  const store = new SqliteEventStore(join(dir, 'sequential.sqlite'));
  const started = process.hrtime.bigint();
  for (let i = 0; i < N; i++) await store.appendToStream(`bench-${i}`, [event(i)], 'no_stream');
  const result = rate(N, started);
  await store.close();
  return result;
}

async function concurrentAppends(dir: string): Promise<{ rate: number; commits: number }> {
  const store = new SqliteEventStore(join(dir, 'concurrent.sqlite'));
  let next = 0;
  const started = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < N) {
        const i = next++;
        await store.appendToStream(`bench-${i}`, [event(i)], 'no_stream');
      }
    }),
  );
  const result = rate(N, started);
  await store.close();
  return { rate: result, commits: N };
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'mfa-bench-'));
  try {
    console.log(`Embedded event store, ${N} single-event appends each, WAL + synchronous=FULL`);
    const raw = rawTransactions(dir);
    const sequential = await sequentialAppends(dir);
    const concurrent = await concurrentAppends(dir);
    const rows = [
      ['raw better-sqlite3 single-row transactions (ceiling)', raw, '1.00x'],
      ['event store, one append at a time', sequential, `${(sequential / raw).toFixed(2)}x`],
      [
        `event store, ${CONCURRENCY} concurrent appenders (group commit)`,
        concurrent.rate,
        `${(concurrent.rate / raw).toFixed(2)}x`,
      ],
    ] as const;
    for (const [name, perSecond, ratio] of rows) {
      console.log(`  ${name.padEnd(62)} ${String(perSecond).padStart(7)} /s  ${ratio}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

void main();
