import Database from 'better-sqlite3';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ChainingEventStore } from '../src/event-store/chaining-event-store';
import { EventStore, NewEvent } from '../src/event-store/event-store.port';
import { SqliteEventStore } from '../src/event-store/sqlite-event-store';

/**
 * Durable single-event appends on the embedded store, beside the ceiling the
 * disk allows: raw better-sqlite3 single-row transactions with the same
 * pragmas (WAL, synchronous=FULL), measured in the same run on the same disk.
 * Each append is measured without hash chains, with them as the service
 * makes them (linked in the write transaction, ADR 0017), and behind the
 * decorator KurrentDB uses (one read of the predecessor before the append),
 * alternately in the same run.
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

type Open = (file: string) => EventStore;
const bare: Open = (file) => new SqliteEventStore(file, { chainAppends: false });
/** How the service opens it: events linked in the write transaction. */
const chained: Open = (file) => new SqliteEventStore(file);
/** As KurrentDB runs: the decorator reads each predecessor before the append. */
const decorated: Open = (file) =>
  new ChainingEventStore(new SqliteEventStore(file, { chainAppends: false }));

/** One append at a time, each to a new stream (`no_stream`: nothing to read before). */
async function sequentialAppends(dir: string, open: Open, name: string): Promise<number> {
  const store = open(join(dir, `sequential-${name}.sqlite`));
  const started = process.hrtime.bigint();
  for (let i = 0; i < N; i++) await store.appendToStream(`bench-${i}`, [event(i)], 'no_stream');
  const result = rate(N, started);
  await store.close();
  return result;
}

/** CONCURRENCY appenders, each to new streams (group commit). */
async function concurrentAppends(dir: string, open: Open, name: string): Promise<number> {
  const store = open(join(dir, `concurrent-${name}.sqlite`));
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
  return result;
}

/**
 * CONCURRENCY appenders, each to its own existing stream at its exact
 * revision, as commands on users do: behind the chains, each append first
 * reads the stream's last event.
 */
async function existingStreamAppends(dir: string, open: Open, name: string): Promise<number> {
  const store = open(join(dir, `existing-${name}.sqlite`));
  for (let s = 0; s < CONCURRENCY; s++) {
    await store.appendToStream(`bench-${s}`, [event(s)], 'no_stream');
  }
  let next = 0;
  const started = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async (_, s) => {
      let revision = 0n;
      while (next < N) {
        const i = next++;
        revision = (await store.appendToStream(`bench-${s}`, [event(i)], revision))
          .nextExpectedRevision;
      }
    }),
  );
  const result = rate(N, started);
  await store.close();
  return result;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'mfa-bench-'));
  try {
    console.log(`Embedded event store, ${N} single-event appends each, WAL + synchronous=FULL`);
    const raw = rawTransactions(dir);
    const rows: Array<[string, number]> = [];
    const pair = async (
      label: string,
      run: (dir: string, open: Open, name: string) => Promise<number>,
    ) => {
      // The variants alternate, twice each, best kept: the disk is shared and noisy.
      const variants: Array<[string, Open]> = [
        ['without chains', bare],
        ['with hash chains', chained],
        ['behind the chaining decorator', decorated],
      ];
      const best = new Map<string, number>();
      for (const round of [1, 2]) {
        for (const [name, open] of round === 1 ? variants : [...variants].reverse()) {
          const perSecond = await run(dir, open, `${name.replace(/\W/g, '')}-${round}`);
          best.set(name, Math.max(best.get(name) ?? 0, perSecond));
        }
      }
      for (const [name] of variants) rows.push([`${label}, ${name}`, best.get(name)!]);
    };
    await pair('one append at a time, new streams', sequentialAppends);
    await pair(`${CONCURRENCY} concurrent appenders, new streams`, concurrentAppends);
    await pair(`${CONCURRENCY} concurrent appenders, existing streams`, existingStreamAppends);
    console.log(
      `  ${'raw better-sqlite3 single-row transactions (ceiling)'.padEnd(76)} ${String(raw).padStart(7)} /s  1.00x`,
    );
    for (const [name, perSecond] of rows) {
      console.log(
        `  ${name.padEnd(76)} ${String(perSecond).padStart(7)} /s  ${(perSecond / raw).toFixed(2)}x`,
      );
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

void main();
