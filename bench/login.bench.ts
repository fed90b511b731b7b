import { Controller, Get, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, NestFastifyApplication } from '@nestjs/platform-fastify';
import autocannon from 'autocannon';
import jwt from 'jsonwebtoken';
import { ChildProcess, execFileSync } from 'node:child_process';
import { createHmac, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { NewEvent } from '../src/event-store/event-store.port';
import { start } from './child-process';
import { rawTransactions } from './event-store.bench';
import { BenchOptions, figures, Section } from './report';
import { SqliteEventStore } from '../src/event-store/sqlite-event-store';
import { currentSchemaVersion } from '../src/event-store/upcasting';
import { streams } from '../src/shared/ids';
import {
  freshVerificationState,
  verificationDecider,
  VerificationState,
} from '../src/verification/verification.decider';

/**
 * The login path under load, beside the ceilings measured in the same run, on
 * a realistic population (10 firms, 100,000 users in all, 20,000 of them
 * corp users enrolled with a TOTP app, the others case managers for whom MFA
 * is off, so that no invitation email is queued; --quick: 1,000 and 200):
 *   - durable commands over HTTP: the registrations and the enrollment
 *     confirmations that build the population, beside the one-fsync ceiling
 *     (raw better-sqlite3 single-row transactions, WAL + synchronous=FULL, in
 *     the same folder);
 *   (a) a bare NestJS + Fastify constant route (no auth, no store): the ceiling;
 *   (b) GET login-requirement, rotating over all users;
 *   (c) POST totp/verify: the success path (one fresh code per request, each
 *       user and time step used once) and the failure path (a wrong code, at
 *       most 4 per user so that no lock kicks in);
 *   (d) O(1) in history: a user with 100,000 past verification events,
 *       seeded straight into its verification stream with the events the
 *       verification decider writes, against a new user.
 * The service is the built one (dist/src/main.js) in its own process on a
 * fresh DATA_DIR (SQLite, synchronous=FULL); the ceiling runs in its own
 * process too; autocannon runs here. Codes come from an RFC 6238
 * implementation in this file, checked against oathtool when installed.
 *   npm run bench -- --only login   (BENCH_USERS=100000, BENCH_ENROLLED=20000,
 *     BENCH_SECONDS=10, BENCH_CONNECTIONS=50, BENCH_HISTORY=100000 to change the
 *     sizes; BENCH_RATE_LIMITS=on to keep the rate limits, switched off by default;
 *     BENCH_CPU_PROF=<dir> for a .cpuprofile of the service, written when it shuts down)
 */

let USERS = Number(process.env.BENCH_USERS ?? 100_000);
let ENROLLED = Number(process.env.BENCH_ENROLLED ?? 20_000);
let SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 50);
let HISTORY = Number(process.env.BENCH_HISTORY ?? 100_000);
const FIRMS = 10;
const JWT_SECRET = 'bench-secret-bench-secret-bench-secret-0123';
const MASTER_KEY = 'ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100';
const MAIN = join(__dirname, '..', 'src', 'main.js');

@Controller()
class ConstantController {
  @Get('constant')
  constant() {
    return { ok: true };
  }
}

@Module({ controllers: [ConstantController] })
class ConstantModule {}

/** The ceiling: the same framework and adapter, a route that does nothing. */
async function ceilingServer(): Promise<void> {
  const app = await NestFactory.create<NestFastifyApplication>(
    ConstantModule,
    new FastifyAdapter({ logger: false }),
    { logger: false },
  );
  await app.listen(0, '127.0.0.1');
  process.stdout.write(`listening on ${await app.getUrl()}\n`);
}

// --- TOTP (RFC 6238, SHA-1, 6 digits, 30 s), independent of the service's library ---

function base32Decode(text: string): Buffer {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = 0;
  let value = 0;
  const bytes: number[] = [];
  for (const char of text.replace(/=+$/, '').toUpperCase()) {
    value = (value << 5) | alphabet.indexOf(char);
    bits += 5;
    if (bits >= 8) {
      bytes.push((value >>> (bits - 8)) & 0xff);
      bits -= 8;
    }
  }
  return Buffer.from(bytes);
}

function totp(secret: string, step: number): string {
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(step));
  const mac = createHmac('sha1', base32Decode(secret)).update(counter).digest();
  const offset = mac[mac.length - 1] & 0x0f;
  return String((mac.readUInt32BE(offset) & 0x7fffffff) % 1_000_000).padStart(6, '0');
}

const stepNow = () => Math.floor(Date.now() / 30_000);

/** A code matching none of the steps the service accepts now. */
function wrongCode(secret: string): string {
  const valid = new Set([-1, 0, 1].map((d) => totp(secret, stepNow() + d)));
  for (let n = 0; ; n++) {
    const candidate = String(n).padStart(6, '0');
    if (!valid.has(candidate)) return candidate;
  }
}

// --- HTTP ---

const hostToken = jwt.sign({ role: 'host' }, JWT_SECRET, {
  algorithm: 'HS256',
  subject: 'bench-host',
  expiresIn: 3600,
});
const operatorToken = jwt.sign({ role: 'operator' }, JWT_SECRET, {
  algorithm: 'HS256',
  subject: 'bench-ops',
  expiresIn: 3600,
});
const superuserOf = (firmId: string) =>
  jwt.sign({ role: 'superuser', firm: firmId }, JWT_SECRET, {
    algorithm: 'HS256',
    subject: 'bench-admin',
    expiresIn: 3600,
  });

async function call(
  base: string,
  method: string,
  path: string,
  token: string,
  body?: unknown,
): Promise<{ status: number; body: any }> {
  const response = await fetch(`${base}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : undefined };
}

async function ok(
  answer: Promise<{ status: number; body: any }>,
  status = 200,
): Promise<{ status: number; body: any }> {
  const result = await answer;
  if (result.status !== status) {
    throw new Error(`Expected ${status}, got ${result.status}: ${JSON.stringify(result.body)}`);
  }
  return result;
}

interface Enrolled {
  firmId: string;
  userId: string;
  secret: string;
  factorId: string;
  /** The time step of the code that confirmed the enrollment: that step and earlier are spent. */
  confirmedStep?: number;
}

const mfa = (firmId: string, userId: string) => `/v1/firms/${firmId}/users/${userId}/mfa`;

/**
 * A firm with an active subscription of `licenses` seats and MFA on for every
 * corporation's corp users. Case managers stay off: MFA starting to apply to
 * an unenrolled case manager queues an invitation email (docs/notifications.md),
 * and tens of thousands of them being sent would be measured with the logins.
 */
async function activeFirm(base: string, firmId: string, licenses: number): Promise<void> {
  const admin = superuserOf(firmId);
  await ok(
    call(base, 'POST', `/v1/firms/${firmId}/mfa/subscription/request`, admin, {
      plan: 'standard',
    }),
  );
  await ok(
    call(base, 'POST', `/v1/firms/${firmId}/mfa/subscription/activate`, operatorToken, {
      plan: 'standard',
      licenseCount: licenses,
    }),
  );
  await ok(
    call(base, 'PUT', `/v1/firms/${firmId}/mfa/enablement/corporations`, admin, {
      mode: 'all',
      corpUsers: true,
    }),
  );
}

/** A corp user (MFA applies: it enrolls) or a case manager (MFA off in these firms). */
const registration = (firmId: string, userId: string, enrolling = true): RequestShape => ({
  method: 'PUT',
  path: `/v1/firms/${firmId}/users/${userId}`,
  body: JSON.stringify({
    role: enrolling ? 'corp-user' : 'case-manager',
    ...(enrolling ? { corporationId: `corp-${userId.length % 7}` } : {}),
    name: `User ${userId}`,
    email: `${userId}@firm.example`,
  }),
});

/** A registered user starts a TOTP enrollment: its secret, and the confirmation to send. */
async function startEnrollment(base: string, firmId: string, userId: string) {
  const started = await ok(
    call(base, 'POST', `${mfa(firmId, userId)}/totp/enrollment`, hostToken, {}),
    201,
  );
  const secret = new URL(started.body.otpauthUri as string).searchParams.get('secret')!;
  return { firmId, userId, secret, enrollmentId: started.body.enrollmentId as string };
}

async function enroll(base: string, firmId: string, userId: string): Promise<Enrolled> {
  const shape = registration(firmId, userId);
  await ok(call(base, shape.method, shape.path, hostToken, JSON.parse(shape.body!)));
  const started = await startEnrollment(base, firmId, userId);
  const confirmedStep = stepNow();
  const confirmed = await ok(
    call(
      base,
      'POST',
      `${mfa(firmId, userId)}/totp/enrollment/${started.enrollmentId}/confirm`,
      hostToken,
      { code: totp(started.secret, confirmedStep) },
    ),
  );
  return {
    firmId,
    userId,
    secret: started.secret,
    factorId: confirmed.body.factorId as string,
    confirmedStep,
  };
}

/** Runs `work` over `items`, `concurrency` at a time. */
async function pool<T, R>(items: T[], concurrency: number, work: (item: T) => Promise<R>) {
  const results: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < items.length) {
        const index = next++;
        results[index] = await work(items[index]);
      }
    }),
  );
  return results;
}

/** Waits until every projection and process manager has applied the head of the log. */
async function caughtUp(base: string, deadlineMs = 120_000): Promise<void> {
  const deadline = Date.now() + deadlineMs;
  while (Date.now() < deadline) {
    const health = (await (await fetch(`${base}/health`)).json()) as {
      eventStore: { headPosition: string };
      projections: Array<{ position: string }>;
      processManagers: Array<{ position: string }>;
    };
    const head = health.eventStore.headPosition;
    if ([...health.projections, ...health.processManagers].every((c) => c.position === head)) {
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error('The service did not catch up with the log');
}

// --- The history of a heavy user, written as the verification decider writes it ---

async function seedHistory(
  dataDir: string,
  user: Enrolled,
  count: number,
): Promise<VerificationState> {
  const store = new SqliteEventStore(join(dataDir, 'events.sqlite'));
  const streamId = streams.verification(user.firmId, user.userId);
  let state = freshVerificationState(0);
  // One attempt per past time step, ending well before now; one in ten was a wrong code.
  const firstStep = stepNow() - count - 100;
  try {
    let batch: NewEvent[] = [];
    for (let i = 0; i < count; i++) {
      const step = firstStep + i;
      const now = new Date(step * 30_000 + 5_000).toISOString();
      const match = i % 10 === 9 ? null : { factorId: user.factorId, timeStep: step };
      const events = verificationDecider.decide({ type: 'RecordTotpAttempt', match }, state, {
        now,
        generation: 0,
      });
      for (const event of events) {
        const id = randomUUID();
        batch.push({
          type: event.type,
          data: event.data as unknown as NewEvent['data'],
          metadata: {
            eventId: id,
            firmId: user.firmId,
            actor: { id: 'bench-host', role: 'host' },
            correlationId: id,
            causationId: id,
            commandId: id,
            occurredAt: now,
            schemaVersion: currentSchemaVersion(event.type),
          },
        });
        state = verificationDecider.evolve(state, event);
      }
      if (batch.length >= 5_000 || i === count - 1) {
        await store.appendToStream(streamId, batch, 'any');
        batch = [];
      }
    }
  } finally {
    await store.close();
  }
  return state;
}

// --- Measuring ---

interface Row {
  name: string;
  perSecond: number;
  p99: number;
  statuses: string;
  /** Answers outside 2xx (and transport errors). */
  refused: number;
  note?: string;
}

type RequestShape = { method: 'GET' | 'POST' | 'PUT'; path: string; body?: string };

async function measure(
  name: string,
  base: string,
  next: () => RequestShape,
  options: { amount?: number; token?: boolean; note?: string } = {},
): Promise<Row> {
  // Why requests were refused: the problem type of each non-2xx answer.
  const refusals = new Map<string, number>();
  const result = await autocannon({
    url: base,
    connections: CONNECTIONS,
    ...(options.amount ? { amount: options.amount } : { duration: SECONDS }),
    headers: {
      ...(options.token === false ? {} : { authorization: `Bearer ${hostToken}` }),
      'content-type': 'application/json',
    },
    requests: [
      {
        // Called once per request sent (the first one of each connection included).
        setupRequest: (request) => {
          const shape = next();
          return {
            ...request,
            method: shape.method,
            path: shape.path,
            ...(shape.body ? { body: shape.body } : {}),
          };
        },
        onResponse: (status, body) => {
          if (status < 300) return;
          let type = String(status);
          try {
            type = String((JSON.parse(body) as { type?: string }).type ?? status).replace(
              '/problems/',
              '',
            );
          } catch {
            // not a problem+json answer: the status says enough
          }
          refusals.set(type, (refusals.get(type) ?? 0) + 1);
        },
      },
    ],
  });
  const statuses = [
    ...Object.entries(result.statusCodeStats ?? {}).map(
      ([code, stat]) => `${code}×${stat.count ?? 0}`,
    ),
    ...[...refusals].map(([type, n]) => `${type}×${n}`),
  ].join(' ');
  return {
    name,
    perSecond: Math.round(result.requests.total / result.duration),
    p99: result.latency.p99,
    refused: result.non2xx + result.errors,
    statuses: result.errors > 0 ? `${statuses} errors×${result.errors}` : statuses,
    note: options.note,
  };
}

/** Latency of a few requests sent one at a time (for paths a user can take only a few times). */
async function sequential(
  name: string,
  base: string,
  shapes: RequestShape[],
): Promise<Row & { mean: number }> {
  const latencies: number[] = [];
  const statuses = new Map<number, number>();
  for (const shape of shapes) {
    const started = performance.now();
    const response = await fetch(`${base}${shape.path}`, {
      method: shape.method,
      headers: { authorization: `Bearer ${hostToken}`, 'content-type': 'application/json' },
      body: shape.body,
    });
    await response.text();
    latencies.push(performance.now() - started);
    statuses.set(response.status, (statuses.get(response.status) ?? 0) + 1);
  }
  const mean = latencies.reduce((a, b) => a + b, 0) / latencies.length;
  return {
    name,
    perSecond: NaN,
    p99: Math.max(...latencies),
    refused: latencies.length - (statuses.get(200) ?? 0),
    mean,
    statuses: [...statuses].map(([code, n]) => `${code}×${n}`).join(' '),
    note: `${shapes.length} requests one at a time: mean ${mean.toFixed(1)} ms, max shown as p99`,
  };
}

function verifyShape(user: Enrolled, code: string): RequestShape {
  return {
    method: 'POST',
    path: `${mfa(user.firmId, user.userId)}/totp/verify`,
    body: JSON.stringify({ code }),
  };
}

async function run({ quick, log }: BenchOptions) {
  if (quick) {
    USERS = 1000;
    ENROLLED = 200;
    SECONDS = 1;
    HISTORY = 1000;
  }
  const figure = figures('login');
  const dataDir = mkdtempSync(join(tmpdir(), 'mfa-login-bench-'));
  const children: ChildProcess[] = [];
  try {
    const ceilingProcess = await start([__filename, '--ceiling-server'], {});
    children.push(ceilingProcess.child);
    const service = await start([MAIN], {
      DATA_DIR: dataDir,
      PORT: '0',
      HOST: '127.0.0.1',
      MFA_JWT_SECRET: JWT_SECRET,
      MFA_MASTER_KEY: MASTER_KEY,
      // The rows measure verification itself: thousands of failures from one caller, and a
      // flood on one locked user, would meet the rate limits' 429 first (docs/security.md).
      // BENCH_RATE_LIMITS=on keeps the defaults, to see what counting costs.
      ...(process.env.BENCH_RATE_LIMITS === 'on'
        ? {}
        : {
            RATE_LIMIT_PER_USER: 'off',
            RATE_LIMIT_FAILURES_PER_CALLER: 'off',
            RATE_LIMIT_FAILURES_PER_FIRM: 'off',
          }),
    });
    children.push(service.child);
    const base = service.url;
    log(
      `autocannon, ${CONNECTIONS} connections, ${SECONDS} s per measure unless a request count is given; ` +
        `service in its own process on SQLite (${dataDir}); load average ${loadavg()[0].toFixed(2)}`,
    );

    // The one-fsync ceiling, on the same disk, just before the commands.
    const oneFsync = rawTransactions(dataDir, quick ? 300 : 2000);

    // The population: FIRMS firms (one seat stream each), USERS users, ENROLLED of them with a TOTP app.
    const setupStarted = Date.now();
    const firms = Array.from({ length: FIRMS }, (_, i) => `bench-${i}`);
    const perFirm = Math.ceil(ENROLLED / FIRMS);
    await Promise.all(firms.map((firmId) => activeFirm(base, firmId, perFirm)));
    await activeFirm(base, 'history', 2);
    const everyone = Array.from({ length: USERS }, (_, i) => ({
      firmId: firms[i % FIRMS],
      userId: `user-${i}`,
    }));
    let g = 0;
    const registrations = await measure(
      'user registrations (PUT user)',
      base,
      () => {
        const i = g++;
        return registration(everyone[i].firmId, everyone[i].userId, i < ENROLLED);
      },
      { amount: USERS },
    );
    const starts = await pool(everyone.slice(0, ENROLLED), 32, (user) =>
      startEnrollment(base, user.firmId, user.userId),
    );
    let c = 0;
    const confirmations = await measure(
      'TOTP enrollment confirmations',
      base,
      () => {
        const started = starts[c++];
        return {
          method: 'POST',
          path: `${mfa(started.firmId, started.userId)}/totp/enrollment/${started.enrollmentId}/confirm`,
          body: JSON.stringify({ code: totp(started.secret, stepNow()) }),
        };
      },
      { amount: ENROLLED },
    );
    const users = starts.map((started) => ({ ...started, factorId: '' }));
    const heavy = await enroll(base, 'history', 'heavy');
    const fresh = await enroll(base, 'history', 'fresh');
    try {
      const oracle = execFileSync('oathtool', ['--totp', '-b', '-N', '@1800000000', heavy.secret], {
        encoding: 'utf8',
      }).trim();
      if (oracle !== totp(heavy.secret, 60_000_000))
        throw new Error('TOTP disagrees with oathtool');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
    const seedStarted = Date.now();
    await seedHistory(dataDir, heavy, HISTORY);
    const seedMs = Date.now() - seedStarted;
    await caughtUp(base);
    log(
      `set-up: ${USERS} users in ${FIRMS} firms, ${ENROLLED} enrolled, in ${((seedStarted - setupStarted) / 1000).toFixed(1)} s; ` +
        `${HISTORY} verification events of one user seeded in ${(seedMs / 1000).toFixed(1)} s`,
    );

    const measureCeiling = () =>
      measure(
        '(a) bare NestJS + Fastify constant route (ceiling)',
        ceilingProcess.url,
        () => ({ method: 'GET', path: '/constant' }),
        { token: false },
      );
    // Measured before and after the login measures, the better kept: on a shared machine one
    // unlucky ceiling would flatter every ratio.
    const ceilingBefore = await measureCeiling();
    let r = 0;
    const requirement = await measure('(b) GET login-requirement, users in turn', base, () => {
      const user = everyone[r++ % everyone.length];
      return { method: 'GET', path: `${mfa(user.firmId, user.userId)}/login-requirement` };
    });

    // Success: one code per user, for the step after the one at sending time: later than the
    // step its enrollment was confirmed with (a code at or before an accepted step is a replay,
    // refused), and valid for 30 to 60 s after it was sent.
    let s = 0;
    const success = await measure(
      '(c) POST totp/verify, success (fresh code, user+step once)',
      base,
      () => {
        const user = users[s++ % users.length];
        return verifyShape(user, totp(user.secret, stepNow() + 1));
      },
      { amount: users.length },
    );
    // Failure: a wrong code, at most four per user (the fifth in a row would lock the user).
    const wrongUsers = users.slice(0, Math.min(users.length, 5000));
    const wrong = wrongUsers.map((user) => verifyShape(user, wrongCode(user.secret)));
    let f = 0;
    const failure = await measure(
      '(c) POST totp/verify, failure (wrong code: 401)',
      base,
      () => wrong[f++ % wrong.length],
      { amount: wrong.length * 2 },
    );

    // O(1) in history.
    const requirementOf = (user: Enrolled) => () =>
      ({ method: 'GET', path: `${mfa(user.firmId, user.userId)}/login-requirement` }) as const;
    const requirementFresh = await measure(
      '(d) GET login-requirement, new user',
      base,
      requirementOf(fresh),
    );
    const requirementHeavy = await measure(
      `(d) GET login-requirement, user with ${HISTORY} verifications`,
      base,
      requirementOf(heavy),
    );
    const sequentialRows: Array<Row & { mean: number }> = [];
    for (const [label, user] of [
      ['new user', fresh],
      [`user with ${HISTORY} verifications`, heavy],
    ] as const) {
      // The steps of the window later than the one that confirmed the enrollment: when these
      // rows come less than a minute after it, the step before now is spent (a replay, 401).
      const now = stepNow();
      const steps = [now - 1, now, now + 1].filter((step) => step > (user.confirmedStep ?? -1));
      sequentialRows.push(
        await sequential(
          `(d) POST totp/verify success, ${label}`,
          base,
          steps.map((step) => verifyShape(user, totp(user.secret, step))),
        ),
      );
    }
    const [verifyFresh, verifyHeavy] = sequentialRows;
    const ceilingAfter = await measureCeiling();
    const ceiling = ceilingAfter.perSecond > ceilingBefore.perSecond ? ceilingAfter : ceilingBefore;

    const statuses = (row: Row) => `${row.statuses}`;
    const allAnswered = (row: Row) => row.refused === 0;
    const rows = [
      ceilingBefore,
      ceilingAfter,
      registrations,
      confirmations,
      requirement,
      success,
      failure,
    ];
    for (const row of [...rows, requirementFresh, requirementHeavy, ...sequentialRows]) {
      log(
        `${row.name}: ${Number.isNaN(row.perSecond) ? '' : `${row.perSecond} req/s, `}p99 ${row.p99} ms; ${row.statuses}${row.note ? `; ${row.note}` : ''}`,
      );
    }
    const p99Ratio = (row: Row) => Math.round((row.p99 / Math.max(ceiling.p99, 1)) * 100) / 100;
    return [
      figure(
        'framework ceiling: bare NestJS + Fastify constant route',
        ceiling.perSecond,
        'req/s',
        {
          note: `p99 ${ceiling.p99} ms, ${CONNECTIONS} connections`,
        },
      ),
      figure('GET login-requirement, 50 connections', requirement.perSecond, 'req/s', {
        ceiling: ceiling.perSecond,
        target: '>= 0.5x',
        met: requirement.perSecond >= 0.5 * ceiling.perSecond && allAnswered(requirement),
        note: statuses(requirement),
      }),
      figure('GET login-requirement p99', requirement.p99, 'ms', {
        ceiling: ceiling.p99,
        ratio: p99Ratio(requirement),
        target: '<= 2x',
        met: requirement.p99 <= 2 * Math.max(ceiling.p99, 1),
      }),
      figure('POST totp/verify, success (each code once)', success.perSecond, 'req/s', {
        ceiling: ceiling.perSecond,
        target: '>= 0.25x',
        met: success.perSecond >= 0.25 * ceiling.perSecond && allAnswered(success),
        note: statuses(success),
      }),
      figure('POST totp/verify success p99', success.p99, 'ms', {
        ceiling: ceiling.p99,
        ratio: p99Ratio(success),
        target: '<= 5x',
        met: success.p99 <= 5 * Math.max(ceiling.p99, 1),
      }),
      figure('POST totp/verify, failure (wrong code, 401)', failure.perSecond, 'req/s', {
        ceiling: ceiling.perSecond,
        note: statuses(failure),
      }),
      figure('one-fsync ceiling: raw SQLite single-row transactions', oneFsync, '/s'),
      figure('durable commands: user registrations over HTTP', registrations.perSecond, '/s', {
        ceiling: oneFsync,
        target: '>= 1.5x',
        met: registrations.perSecond >= 1.5 * oneFsync && allAnswered(registrations),
        note: statuses(registrations),
      }),
      figure(
        'durable commands: TOTP enrollment confirmations over HTTP',
        confirmations.perSecond,
        '/s',
        {
          ceiling: oneFsync,
          target: '>= 1.5x',
          met: confirmations.perSecond >= 1.5 * oneFsync && allAnswered(confirmations),
          note: statuses(confirmations),
        },
      ),
      figure(
        `O(1) in history: login-requirement, user with ${HISTORY} verifications / new user`,
        requirementHeavy.perSecond / requirementFresh.perSecond,
        'x',
        { note: `${requirementHeavy.perSecond} vs ${requirementFresh.perSecond} req/s` },
      ),
      figure(
        `O(1) in history: totp/verify mean latency, user with ${HISTORY} verifications / new user`,
        verifyHeavy.mean / verifyFresh.mean,
        'x',
        {
          note: `${verifyHeavy.mean.toFixed(1)} vs ${verifyFresh.mean.toFixed(1)} ms, ${statuses(verifyHeavy)} / ${statuses(verifyFresh)}`,
        },
      ),
    ];
  } finally {
    await Promise.all(
      children.map(
        (child) =>
          new Promise((resolve) => {
            if (child.exitCode !== null || child.signalCode !== null) return resolve(undefined);
            child.once('exit', resolve);
            child.kill('SIGTERM');
          }),
      ),
    );
    rmSync(dataDir, { recursive: true, force: true });
  }
}

export const loginSection: Section = {
  name: 'login',
  description:
    'login-requirement and totp/verify beside a bare NestJS + Fastify route; registrations and confirmations beside one fsync',
  run,
};

if (require.main === module && process.argv.includes('--ceiling-server')) void ceilingServer();
