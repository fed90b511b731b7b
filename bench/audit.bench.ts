import { spawn } from 'node:child_process';
import { createWriteStream, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { NO_FILTERS } from '../src/audit/audit-query';
import { exportFirm } from '../src/audit/firm-export';
import { verifyExportFile } from '../src/audit/offline-verification';
import { stateAsOf } from '../src/audit/state-as-of';
import { StateSnapshots } from '../src/audit/state-snapshots';
import { SqliteEventStore } from '../src/event-store/sqlite-event-store';
import { seedLog } from './seed-log';
import { BenchOptions, Figure, figures, Section } from './report';

/**
 * The audit on the embedded event store, each number beside its target:
 *   - exporting a firm of 1,000,000 chained events (its own process): events/s
 *     beside the raw read-and-parse rate of the same log measured in the same
 *     run, and the exporting process's peak RSS;
 *   - verifying that export offline (its own process): events/s, peak RSS;
 *   - the state as of a moment of a firm with 100,000 events: folded from the
 *     first event, then resumed from the snapshots of earlier folds;
 *   - for the record, an export of events written before the chain, whose
 *     hashes the exporter recomputes.
 *   BENCH_EVENTS=1000000 BENCH_STATE_EVENTS=100000 (defaults) npm run bench -- --only audit
 */
let EVENTS = Number(process.env.BENCH_EVENTS ?? 1_000_000);
let STATE_EVENTS = Number(process.env.BENCH_STATE_EVENTS ?? 100_000);
const figure = figures('audit');
/** Events of a firm besides its users' (seed-log.ts): a subscription and a switch per firm, 201 firms. */
const FIRM_EVENTS = 201 * 3;

const perSecond = (count: number, ms: number) => Math.round((count * 1000) / ms);
const fmt = (n: number) => n.toLocaleString('en-US');
const mb = (bytes: number) => Math.round(bytes / 1024 / 1024);
function line(name: string, value: string, target: string, ok: boolean) {
  console.log(
    `  ${name.padEnd(72)} ${value.padStart(16)}   ${target.padEnd(22)} ${ok ? 'ok' : 'MISSED'}`,
  );
}

/** The kernel's high-water mark of this process's RSS: catches peaks between two samples. */
function peakRss(): number {
  const hwm = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
  return hwm ? Number(hwm[1]) * 1024 : process.memoryUsage().rss;
}

function child(args: string[]): Promise<Record<string, number | boolean>> {
  return new Promise((resolve, reject) => {
    const process_ = spawn(process.execPath, [__filename, ...args], {
      env: process.env,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let stdout = '';
    process_.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    process_.once('close', (code) => {
      if (code !== 0) reject(new Error(`${args[0]} failed (${code})`));
      else resolve(JSON.parse(stdout.trim().split('\n').pop()!) as Record<string, number>);
    });
  });
}

/** `--export-child DIR FIRM OUT`: the export alone in a fresh process, written to a file. */
async function exportChild(dir: string, firmId: string, out: string): Promise<void> {
  const store = new SqliteEventStore(join(dir, 'events.sqlite'));
  let exported = 0;
  const started = Date.now();
  await pipeline(
    Readable.from(
      exportFirm(store, firmId, {
        filters: NO_FILTERS,
        exportedAt: new Date().toISOString(),
        onProgress: (progress) => (exported = progress.exported),
      }),
      { highWaterMark: 1 },
    ),
    createWriteStream(out),
  );
  const ms = Date.now() - started;
  await store.close();
  process.stdout.write(`${JSON.stringify({ events: exported, ms, peakRss: peakRss() })}\n`);
}

/** `--verify-child FILE`: the offline verification alone in a fresh process. */
async function verifyChild(file: string): Promise<void> {
  const started = Date.now();
  const result = await verifyExportFile(file);
  const ms = Date.now() - started;
  process.stdout.write(
    `${JSON.stringify({ ok: result.ok, events: result.eventsChecked, ms, peakRss: peakRss() })}\n`,
  );
}

/** The firm's own read: readFirm + parse of every event of the firm (what the export reads). */
async function readFirmRate(file: string, firmId: string): Promise<number> {
  const log = new SqliteEventStore(file);
  let events = 0;
  const started = Date.now();
  for (let after = 0n; ;) {
    const page = await log.readFirm(firmId, { after, maxCount: 500 });
    if (page.through === after) break;
    events += page.events.length;
    after = page.through;
  }
  const rate = perSecond(events, Date.now() - started);
  await log.close();
  return rate;
}

/** The raw ceiling: reading and parsing every event of the log, nothing else. */
async function readAllRate(file: string): Promise<{ rate: number; events: number }> {
  const log = new SqliteEventStore(file);
  let events = 0;
  const started = Date.now();
  for (let after = 0n; ;) {
    const batch = await log.readAll({ after, maxCount: 5000 });
    if (batch.length === 0) break;
    events += batch.length;
    after = batch[batch.length - 1].position;
  }
  const rate = perSecond(events, Date.now() - started);
  await log.close();
  return { rate, events };
}

async function exportBench(dir: string): Promise<Figure[]> {
  const file = join(dir, 'events.sqlite');
  let started = Date.now();
  // Every user in firm "big": the firm is (nearly) the whole log.
  const events = seedLog(file, { events: EVENTS, bigFirmUsers: EVENTS, chained: true });
  console.log(
    `Seeded ${fmt(events)} chained events, ${fmt(events - FIRM_EVENTS + 3)} of them in firm "big", in ` +
      `${((Date.now() - started) / 1000).toFixed(1)} s; load average ${loadavg()[0].toFixed(2)}`,
  );
  const ceiling = await readAllRate(file);
  const firmCeiling = await readFirmRate(file, 'big');
  const out = join(dir, 'big.ndjson');
  started = Date.now();
  const exported = await child(['--export-child', dir, 'big', out]);
  const exportRate = perSecond(Number(exported.events), Number(exported.ms));
  const size = statSync(out).size;
  const verified = await child(['--verify-child', out]);
  rmSync(out, { force: true });

  console.log(
    `\nExport of firm "big" to a file, its own process (load average ${loadavg()[0].toFixed(2)})`,
  );
  line(
    "ceiling: readAll + parse of the same log (the port's plain read)",
    `${fmt(ceiling.rate)} ev/s`,
    '',
    true,
  );
  line(
    `export, ${fmt(Number(exported.events))} events, ${fmt(mb(size))} MB of NDJSON`,
    `${fmt(exportRate)} ev/s`,
    '>= 0.5x the ceiling',
    exportRate >= ceiling.rate / 2,
  );
  line('export / ceiling', `${(exportRate / ceiling.rate).toFixed(2)}x`, '', true);
  line(
    "readFirm + parse of the firm's events (the export's own read)",
    `${fmt(firmCeiling)} ev/s`,
    '',
    true,
  );
  line('export / that read', `${(exportRate / firmCeiling).toFixed(2)}x`, '', true);
  line(
    'peak RSS of the exporting process',
    `${mb(Number(exported.peakRss))} MB`,
    '< 200 MB',
    mb(Number(exported.peakRss)) < 200,
  );
  line(
    `offline verification of that file (${verified.ok ? 'verifies' : 'DOES NOT VERIFY'})`,
    `${fmt(perSecond(Number(verified.events), Number(verified.ms)))} ev/s`,
    '',
    verified.ok === true,
  );
  line('peak RSS of the verifying process', `${mb(Number(verified.peakRss))} MB`, '', true);
  return [
    figure('ceiling: readAll + parse of the same log', ceiling.rate, 'ev/s'),
    figure(`export of a firm, ${fmt(Number(exported.events))} chained events`, exportRate, 'ev/s', {
      ceiling: ceiling.rate,
      target: '>= 0.5x',
      met: exportRate >= ceiling.rate / 2,
    }),
    figure('peak RSS of the exporting process', mb(Number(exported.peakRss)), 'MB', {
      target: '< 200 MB',
      met: mb(Number(exported.peakRss)) < 200,
    }),
    figure(
      'offline verification of that export',
      perSecond(Number(verified.events), Number(verified.ms)),
      'ev/s',
      { ceiling: ceiling.rate, target: 'verifies', met: verified.ok === true },
    ),
  ];
}

async function stateBench(root: string): Promise<Figure[]> {
  const dir = join(root, 'state');
  mkdirSync(dir);
  const file = join(dir, 'events.sqlite');
  const users = Math.ceil(STATE_EVENTS / 4) + 1;
  // A minute between events: the firm's history spans about ten weeks.
  const spacing = 60_000;
  const events = seedLog(file, { events: users * 4 + FIRM_EVENTS, bigFirmUsers: users, spacing });
  const store = new SqliteEventStore(file);
  let firmEvents = 0;
  for (let after = 0n; ;) {
    const page = await store.readFirm('big', { after, maxCount: 5000 });
    if (page.through === after) break;
    firmEvents += page.events.length;
    after = page.through;
  }
  const now = Date.now();
  const middle = Date.parse('2026-01-15T09:00:00.000Z') + (events / 2) * spacing;
  const time = async (asOf: number, snapshots?: StateSnapshots) => {
    const t0 = performance.now();
    const answer = await stateAsOf(store, 'big', asOf, { snapshots });
    return { ms: performance.now() - t0, answer };
  };
  const cold: number[] = [];
  for (let i = 0; i < 3; i++) cold.push((await time(now)).ms);
  const snapshots = new StateSnapshots();
  const first = await time(now, snapshots);
  const again: number[] = [];
  for (let i = 0; i < 5; i++) again.push((await time(now, snapshots)).ms);
  const past: number[] = [];
  for (let i = 0; i < 5; i++) past.push((await time(middle + i * 3_600_000, snapshots)).ms);
  await store.close();
  const median = (values: number[]) =>
    [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
  console.log(
    `\nState as of a moment of firm "big": ${fmt(firmEvents)} events of ${fmt(events)} in the log, ` +
      `${fmt(first.answer.enrolledUsers.length)} enrolled users (load average ${loadavg()[0].toFixed(2)})`,
  );
  line(
    'fold from the first event (no snapshot), median of 3',
    `${median(cold).toFixed(0)} ms`,
    '< 1,000 ms',
    median(cold) < 1000,
  );
  line('first call keeping snapshots', `${first.ms.toFixed(0)} ms`, '', true);
  line(
    'as of now again, from the last snapshot, median of 5',
    `${median(again).toFixed(0)} ms`,
    '< 1,000 ms',
    median(again) < 1000,
  );
  line(
    'as of five moments mid-history, from the closest snapshot, median',
    `${median(past).toFixed(0)} ms`,
    '< 1,000 ms',
    median(past) < 1000,
  );
  line('documents held by the snapshots', fmt(snapshots.documents), '', true);

  // Events written before the chain: the exporter recomputes each hash (RFC 8785 + SHA-256).
  const ceiling = await readAllRate(file);
  const out = join(dir, 'big.ndjson');
  const exported = await child(['--export-child', dir, 'big', out]);
  rmSync(out, { force: true });
  const rate = perSecond(Number(exported.events), Number(exported.ms));
  console.log(`\nExport of the same firm, events written before the chain (hashes recomputed)`);
  line('ceiling: readAll + parse of the same log', `${fmt(ceiling.rate)} ev/s`, '', true);
  line(`export, ${fmt(Number(exported.events))} events`, `${fmt(rate)} ev/s`, '', true);
  line('export / ceiling', `${(rate / ceiling.rate).toFixed(2)}x`, '', true);
  return [
    figure(
      `state as of now of a firm of ${fmt(firmEvents)} events, folded from the first`,
      median(cold),
      'ms',
      {
        target: '< 1,000 ms',
        met: median(cold) < 1000,
      },
    ),
    figure('state as of a moment mid-history, from the closest snapshot', median(past), 'ms', {
      target: '< 1,000 ms',
      met: median(past) < 1000,
    }),
  ];
}

async function run({ quick }: BenchOptions): Promise<Figure[]> {
  if (quick) {
    EVENTS = 20_000;
    STATE_EVENTS = 4_000;
  }
  const dir = mkdtempSync(join(tmpdir(), 'mfa-bench-audit-'));
  try {
    return [...(await exportBench(dir)), ...(await stateBench(dir))];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export const auditSection: Section = {
  name: 'audit',
  description: 'export and offline verification beside the raw read; the state as of a moment',
  run,
};

if (require.main === module) {
  if (process.argv[2] === '--export-child') {
    void exportChild(process.argv[3], process.argv[4], process.argv[5]);
  } else if (process.argv[2] === '--verify-child') {
    void verifyChild(process.argv[3]);
  }
}
