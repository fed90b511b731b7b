import Database from 'better-sqlite3';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ALL_PROJECTIONS } from '../projections';
import { enrolledUsers } from '../projections/enrolled-users.projection';
import type { ReadModelReader } from '../projections/projection';
import { createApp } from '../src/app';
import { loadConfig } from '../src/config/config';
import { SqliteEventStore } from '../src/event-store/sqlite-event-store';
import { ProjectionEngine } from '../src/projection-engine/projection-engine';
import { rebuildProjections } from '../src/projection-engine/rebuild';
import { SqliteReadModelStore } from '../src/read-model/sqlite-read-model-store';
import type { FindQuery } from '../src/read-model/read-model-store.port';

/**
 * Read models on the embedded stores, each number beside its target:
 *   - rebuild from zero (all projections, one pass) vs the raw read-and-parse
 *     rate of the same log, and the peak RSS while rebuilding;
 *   - enrolled-users search p95 in a firm with 100,000 enrolled users;
 *   - projection lag p99 between a command's answer and its effect, at
 *     1,000 commands per second over HTTP.
 *   BENCH_EVENTS=1000000 (default) BENCH_LAG_SECONDS=5 npm run bench
 */
const EVENTS = Number(process.env.BENCH_EVENTS ?? 1_000_000);
const BIG_FIRM_USERS = Math.min(100_000, Math.floor(EVENTS / 10));
const LAG_SECONDS = Number(process.env.BENCH_LAG_SECONDS ?? 5);
const NAMES = ['Ann', 'Bob', 'Carla', 'Dmitri', 'Élodie', 'Farah', 'Gus', 'Hana', 'Ivo', 'Jun'];
const SURNAMES = ['Smith', 'Okafor', 'Nguyen', 'García', 'Kowalski', 'Rossi', 'Tanaka', 'Müller'];
const ORGS = ['Acme Law', 'Globex', 'Initech', 'Umbrella', 'Stark Legal', null];

function metadata(firmId: string, type: string) {
  const id = randomUUID();
  return JSON.stringify({
    eventId: id,
    firmId,
    actor: { id: 'bench', role: 'system' },
    correlationId: id,
    causationId: id,
    commandId: id,
    occurredAt: '2026-01-15T09:00:00.000Z',
    schemaVersion: type.startsWith('Seat') ? 2 : 1,
  });
}

/** Writes the log straight into events.sqlite: four events per enrolled user. */
function seed(file: string): number {
  new SqliteEventStore(file).close().catch(() => undefined);
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = OFF');
  const insert = db.prepare(
    'INSERT INTO events (event_id, stream_id, revision, type, data, metadata) VALUES (?, ?, ?, ?, ?, ?)',
  );
  const revisions = new Map<string, number>();
  let count = 0;
  const add = (firmId: string, stream: string, type: string, data: object) => {
    const revision = revisions.get(stream) ?? 0;
    revisions.set(stream, revision + 1);
    const meta = metadata(firmId, type);
    insert.run(JSON.parse(meta).eventId, stream, revision, type, JSON.stringify(data), meta);
    count++;
  };
  const at = '2026-01-15T10:00:00.000Z';
  const firms = ['big', ...Array.from({ length: 200 }, (_, i) => `firm${i}`)];
  const insertAll = db.transaction(() => {
    for (const firmId of firms) {
      add(firmId, `subscription-${firmId}`, 'SubscriptionRequested', {
        plan: 'p',
        requestedAt: at,
      });
      add(firmId, `subscription-${firmId}`, 'SubscriptionActivated', {
        plan: 'p',
        licenseCount: 1_000_000,
        activatedAt: at,
      });
      add(firmId, `enablement-${firmId}`, 'CaseManagersEnablementChanged', {
        enabled: true,
        changedAt: at,
      });
    }
    let user = 0;
    while (count < EVENTS - 4) {
      const firmId = user < BIG_FIRM_USERS ? 'big' : firms[1 + (user % 200)];
      const userId = `user${user}`;
      const stream = `user-${firmId}/${userId}`;
      const corporate = user % 3 === 0;
      add(firmId, stream, 'UserRegistered', {
        userId,
        role: corporate ? 'corp-user' : 'case-manager',
        corporationId: corporate ? `corp${user % 500}` : null,
        name: `${NAMES[user % NAMES.length]} ${SURNAMES[(user >> 3) % SURNAMES.length]} ${user}`,
        email: `${userId}@example.com`,
        organization: ORGS[user % ORGS.length],
        billingContact: false,
        firmAdmin: false,
        registeredAt: at,
      });
      add(firmId, stream, 'TotpEnrollmentStarted', {
        userId,
        enrollmentId: `e${user}`,
        label: 'phone',
        generation: 0,
        expiresAt: at,
        startedAt: at,
        secret: { keyId: 'k', iv: 'x', data: 'y' },
      });
      add(firmId, stream, 'FactorConfirmed', {
        userId,
        factorId: `f${user}`,
        enrollmentId: `e${user}`,
        factorType: user % 5 === 0 ? 'webauthn' : 'totp',
        label: 'phone',
        generation: 0,
        confirmedAt: at,
      });
      add(firmId, `subscription-${firmId}`, 'SeatAssigned', {
        userId,
        assignedAt: at,
        generation: 0,
        enrollmentId: `e${user}`,
      });
      user++;
    }
  });
  insertAll();
  db.close();
  return count;
}

const perSecond = (count: number, ms: number) => Math.round((count * 1000) / ms);
const fmt = (n: number) => n.toLocaleString('en-US');
function line(name: string, value: string, target: string, ok: boolean) {
  console.log(
    `  ${name.padEnd(58)} ${value.padStart(16)}   ${target.padEnd(22)} ${ok ? 'ok' : 'MISSED'}`,
  );
}
function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

async function rebuildBench(dir: string) {
  const file = join(dir, 'events.sqlite');
  let started = Date.now();
  const events = seed(file);
  console.log(
    `Seeded ${fmt(events)} events (${fmt(BIG_FIRM_USERS)} enrolled users in firm "big") in ${((Date.now() - started) / 1000).toFixed(1)} s`,
  );

  const log = new SqliteEventStore(file);
  started = Date.now();
  let read = 0;
  for (let after = 0n; ;) {
    const batch = await log.readAll({ after, maxCount: 5000 });
    if (batch.length === 0) break;
    read += batch.length;
    after = batch[batch.length - 1].position;
  }
  const rawRate = perSecond(read, Date.now() - started);

  const store = new SqliteReadModelStore(join(dir, 'readmodels.sqlite'));
  const rssBefore = process.memoryUsage().rss;
  let peakRss = rssBefore;
  started = Date.now();
  await rebuildProjections(log, store, ALL_PROJECTIONS, {
    onProgress: () => {
      peakRss = Math.max(peakRss, process.memoryUsage().rss);
    },
  });
  const rebuildRate = perSecond(events, Date.now() - started);
  peakRss = Math.max(peakRss, process.memoryUsage().rss);

  console.log(`\nRebuild from zero, all ${ALL_PROJECTIONS.length} projections in one pass`);
  line('raw read-and-parse of the same log (ceiling)', `${fmt(rawRate)} ev/s`, '', true);
  line('rebuild', `${fmt(rebuildRate)} ev/s`, '>= 100,000 ev/s', rebuildRate >= 100_000);
  line('rebuild / raw read', `${(rebuildRate / rawRate).toFixed(2)}x`, '', true);
  const mb = (bytes: number) => Math.round(bytes / 1024 / 1024);
  line(
    `peak RSS while rebuilding ${fmt(events)} events`,
    `${mb(peakRss)} MB`,
    '< 300 MB',
    mb(peakRss) < 300,
  );

  const active = await store.activeGenerations();
  const target = { projection: 'enrolled-users', generation: active.get('enrolled-users')! };
  const reader: ReadModelReader = {
    get: (collection, id) => store.get(target, collection, id) as never,
    find: (collection, query: FindQuery) => store.find(target, collection, query) as never,
  };
  const searches = [
    '',
    'ann',
    'SMITH',
    'élo',
    'globex',
    'garcía 12',
    'zzq-nobody',
    'stark',
    'a',
    '7',
  ];
  const roles = [undefined, 'case-manager', 'corp-user'] as const;
  const times: number[] = [];
  for (let i = 0; i < 600; i++) {
    const search = searches[i % searches.length];
    const role = roles[i % roles.length];
    const t0 = process.hrtime.bigint();
    let page = await enrolledUsers(reader, 'big', { search, role, limit: 50 });
    // Every third query reads a deeper page through the cursor.
    if (i % 3 === 0 && page.next) {
      page = await enrolledUsers(reader, 'big', { search, role, limit: 50, after: page.next });
    }
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  const p95 = percentile(times, 95);
  console.log(
    `\nEnrolled-users search, firm with ${fmt(BIG_FIRM_USERS)} enrolled users, page of 50`,
  );
  line('p50', `${percentile(times, 50).toFixed(2)} ms`, '', true);
  line('p95', `${p95.toFixed(2)} ms`, '< 20 ms', p95 < 20);
  line(
    'max (includes a search matching nobody: a full index walk)',
    `${Math.max(...times).toFixed(2)} ms`,
    '',
    true,
  );
  await store.close();
  await log.close();
}

async function lagBench(dir: string) {
  const config = loadConfig({
    DATA_DIR: join(dir, 'lag'),
    MFA_JWT_SECRET: 'bench-secret-bench-secret-bench-secret-0123',
    MFA_MASTER_KEY: '00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff',
    PORT: '0',
  }).config;
  const app = await createApp(config, { logLevels: ['error'] });
  await app.listen(0, '127.0.0.1');
  const { port } = app.getHttpServer().address() as { port: number };
  const engine = app.get(ProjectionEngine);
  const jwt = (await import('jsonwebtoken')).default;
  const hostToken = jwt.sign(
    { role: 'host' },
    config.jwt.algorithm === 'HS256' ? config.jwt.secret : '',
    {
      algorithm: 'HS256',
      subject: 'bench',
      expiresIn: 600,
    },
  );
  const lags: number[] = [];
  let failures = 0;
  const total = 1000 * LAG_SECONDS;
  let sent = 0;
  const pending: Promise<void>[] = [];
  const started = Date.now();
  await new Promise<void>((resolve) => {
    const timer = setInterval(() => {
      // Paced to 1,000 commands per second: each 10 ms tick sends what is due by now.
      const due = Math.min(total, Math.floor(((Date.now() - started) * 1000) / 1000));
      while (sent < due) {
        const i = sent++;
        pending.push(
          (async () => {
            try {
              const response = await fetch(`http://127.0.0.1:${port}/v1/firms/lag/users/u${i}`, {
                method: 'PUT',
                headers: {
                  authorization: `Bearer ${hostToken}`,
                  'content-type': 'application/json',
                },
                body: JSON.stringify({
                  role: 'case-manager',
                  name: `User ${i}`,
                  email: `u${i}@example.com`,
                }),
              });
              const answeredAt = performance.now();
              const { position } = (await response.json()) as { position: string };
              await engine.waitFor(BigInt(position), [], 5000);
              lags.push(performance.now() - answeredAt);
            } catch {
              failures++;
            }
          })(),
        );
      }
      if (sent >= total) {
        clearInterval(timer);
        resolve();
      }
    }, 10);
  });
  await Promise.all(pending);
  const rate = perSecond(total, Date.now() - started);
  await app.close();
  const p99 = percentile(lags, 99);
  console.log(
    `\nProjection lag, ${fmt(total)} commands over HTTP at ~${fmt(rate)}/s, all ${ALL_PROJECTIONS.length} projections`,
  );
  line('p50', `${percentile(lags, 50).toFixed(2)} ms`, '', true);
  line('p99', `${p99.toFixed(2)} ms`, '< 50 ms', p99 < 50);
  if (failures > 0)
    console.log(`  (${fmt(failures)} requests failed at the HTTP client and are not counted)`);
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'mfa-bench-rm-'));
  try {
    await rebuildBench(dir);
    await lagBench(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

void main();
