import { rmSync } from 'node:fs';
import { join } from 'node:path';
import type { RecordedEvent } from '../../src/event-store/event-store.port';
import { SqliteEventStore } from '../../src/event-store/sqlite-event-store';
import { Api, tempDir } from '../support/harness';
import {
  activeFirm,
  enrollTotp,
  expectOk,
  mfaPath,
  registerUser,
  superuserOf,
} from '../support/mfa';
import { requireBuild, ServiceProcess, spawnService } from '../support/processes';
import { SmtpSink } from '../support/smtp-sink';

/*
 * DESIGN §5 and §6 with two service processes on one data folder: each
 * process manager has one owner at a time (a lease in readmodels.sqlite), so
 * every due email reaches the SMTP server exactly once, counted per
 * Message-ID and per (recipient, notification). When the lease owner is
 * killed, the standby takes the lease over once it expires and sends the rest;
 * a message then arrives twice only if the server took it just before the kill,
 * and both copies carry one Message-ID.
 */
const FIRM = 'twin-mail';
/** Short leases, so that a killed owner's work resumes within seconds. */
const LEASES = { PROCESS_LEASE_SECONDS: '3', PROCESS_LEASE_RENEW_SECONDS: '1' };

describe('two instances send the emails of one firm', () => {
  let dir: string;
  let services: ServiceProcess[] = [];
  const sink = new SmtpSink();

  beforeAll(async () => {
    requireBuild();
    await sink.start();
  });
  beforeEach(() => {
    dir = tempDir('mfa-mail-twins-');
    sink.received.length = 0;
    sink.options.beforeAccept = undefined;
  });
  afterEach(async () => {
    await Promise.all(services.map((s) => s.stop('SIGKILL')));
    services = [];
    rmSync(dir, { recursive: true, force: true });
  });
  afterAll(() => sink.stop());

  it('every due email arrives exactly once per Message-ID and per (recipient, notification)', async () => {
    const env = { SMTP_URL: sink.url, MAIL_RETRY_MAX_SECONDS: '1', ...LEASES };
    services = [await spawnService(dir, env), await spawnService(dir, env)];
    const apis = services.map((s) => new Api(s.url));
    await workload(apis);

    const log = new SqliteEventStore(join(dir, 'events.sqlite'));
    try {
      await settled(apis, log);
      const events = await log.readAll();
      const queued = checkQueue(events);
      // Exactly once: no copy at all, not even one with the same Message-ID.
      expect(countBy(sink.received, (m) => m.messageId)).toEqual(
        countBy(queued, (q) => `<${String(q.data.messageId)}@localhost>`),
      );
      expect(countBy(sink.received, (m) => `${m.to} ${m.notification}`)).toEqual(
        countBy(queued, recipientAndKind),
      );
      expect(sink.received).toHaveLength(queued.length);
      const sent = events.filter((e) => e.type === 'EmailSent').map((e) => e.data.messageId);
      expect(sent.sort()).toEqual(queued.map((q) => q.data.messageId).sort());
    } finally {
      await log.close();
    }
  }, 120_000);

  it('the lease owner is killed while sending: the standby sends the rest, a copy only with the same Message-ID', async () => {
    // The server takes its time over each message, so the kill lands while messages are in flight.
    sink.options.beforeAccept = () => new Promise((resolve) => setTimeout(resolve, 40));
    const env = { SMTP_URL: sink.url, MAIL_RETRY_MAX_SECONDS: '1', ...LEASES };
    services = [await spawnService(dir, env), await spawnService(dir, env)];
    const apis = services.map((s) => new Api(s.url));
    const owner = await mailerOwner(apis);
    const standby = 1 - owner;

    // The owner is killed once a few emails have arrived and more are on their way.
    let killedAt = Infinity;
    const kill = sink.waitForCount(4, 60_000).then(async () => {
      killedAt = Date.now();
      expect(await services[owner].stop('SIGKILL')).toBe('SIGKILL');
    });
    // All commands go to the instance that stays.
    await workload([apis[standby], apis[standby]]);
    await kill;
    expect(killedAt).toBeLessThan(Date.now());

    const log = new SqliteEventStore(join(dir, 'events.sqlite'));
    try {
      await settled([apis[standby]], log);
      expect(await mailerOwner([apis[standby]])).toBe(0);
      const events = await log.readAll();
      const queued = checkQueue(events);
      const ids = countBy(queued, (q) => `<${String(q.data.messageId)}@localhost>`);
      const arrived = countBy(sink.received, (m) => m.messageId);
      // Everything queued arrived; nothing else did.
      expect(Object.keys(arrived).sort()).toEqual(Object.keys(ids).sort());
      // A copy carries the same Message-ID, recipient and notification as the first.
      const byId = new Map<string, Set<string>>();
      for (const mail of sink.received) {
        byId.set(
          mail.messageId,
          (byId.get(mail.messageId) ?? new Set()).add(`${mail.to} ${mail.notification}`),
        );
      }
      for (const copies of byId.values()) expect(copies.size).toBe(1);
      // Before the kill, one instance sent, each message once: the server had it whole by then.
      const beforeKill = countBy(
        sink.received.filter((m) => m.dataEndedAt < killedAt),
        (m) => m.messageId,
      );
      for (const count of Object.values(beforeKill)) expect(count).toBe(1);
      // Copies only of messages the server had before the kill (their record may be lost).
      const copied = Object.keys(arrived).filter((id) => arrived[id] > 1);
      for (const id of copied) expect(beforeKill[id]).toBe(1);
      for (const id of copied) expect(arrived[id]).toBe(2);
      console.log(
        `${queued.length} emails queued, ${Object.keys(beforeKill).length} reached the server before the kill, ` +
          `${copied.length} of them sent again after it`,
      );
      const sent = events.filter((e) => e.type === 'EmailSent').map((e) => e.data.messageId);
      expect(sent.sort()).toEqual(queued.map((q) => q.data.messageId).sort());
    } finally {
      await log.close();
    }
  }, 120_000);

  it('an owner stalled past its lease (SIGSTOP) sends nothing when it resumes: the new holder sends each email once', async () => {
    // Retries every 0.2 s at most: when the owner resumes, its next attempts are due before
    // anything else it had planned (its lease's deadline is at least 0.5 s away at any time).
    const env = { SMTP_URL: sink.url, MAIL_RETRY_MAX_SECONDS: '0.2', ...LEASES };
    services = [await spawnService(dir, env), await spawnService(dir, env)];
    const apis = services.map((s) => new Api(s.url));
    const owner = await mailerOwner(apis);
    const standby = 1 - owner;
    const mailOf = async (i: number) => (await apis[i].get('/health')).body.mail;

    // The mail server is down: the owner has every email queued and retries them.
    await sink.stop();
    await workload([apis[standby], apis[standby]]);
    await until(async () => (await mailOf(owner)).retrying === 21);

    // The owner stalls (a pause of the whole process) past its lease: the standby takes over.
    services[owner].child.kill('SIGSTOP');
    expect(await mailerOwner([apis[standby]])).toBe(0);
    await until(async () => (await mailOf(standby)).retrying === 21);

    // The server is back, and the stalled owner resumes with its retries overdue: only the
    // holder of the lease may hand a message over.
    await sink.start();
    services[owner].child.kill('SIGCONT');
    const log = new SqliteEventStore(join(dir, 'events.sqlite'));
    try {
      await settled(apis, log);
      const queued = checkQueue(await log.readAll());
      expect(countBy(sink.received, (m) => m.messageId)).toEqual(
        countBy(queued, (q) => `<${String(q.data.messageId)}@localhost>`),
      );
      expect(services[owner].output()).toMatch(/notification-mailer: .* stands by/);
      expect(await mailerOwner(apis)).toBe(standby);
    } finally {
      await log.close();
    }
  }, 120_000);
});

/** Polls until `condition` holds (state seen through /health), with a deadline. */
async function until(condition: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`not reached within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/**
 * Twelve corp users fill twelve licenses, four at a time, on both instances:
 * 80 % at the 10th seat, 100 % at the 12th; then three resets and three
 * enrollments cross both again. Twelve case managers registered meanwhile are
 * invited. Two recipients per crossing: 8 usage emails and 13 invitations.
 */
async function workload(apis: Api[]): Promise<void> {
  await activeFirm(apis[0], FIRM, 12);
  expectOk(
    await apis[1].put(`/v1/firms/${FIRM}/mfa/enablement/corporations`, superuserOf(FIRM), {
      mode: 'all',
      corpUsers: true,
    }),
  );
  await registerUser(apis[0], FIRM, 'boss', {
    role: 'corp-user',
    corporationId: 'c',
    firmAdmin: true,
  });
  await registerUser(apis[1], FIRM, 'billing', { billingContact: true });
  const users = Array.from({ length: 12 }, (_, i) => `cu-${i}`);
  await Promise.all(
    users.map((u, i) =>
      registerUser(apis[i % 2], FIRM, u, { role: 'corp-user', corporationId: 'c' }),
    ),
  );
  for (let i = 0; i < users.length; i += 4) {
    await Promise.all(
      users
        .slice(i, i + 4)
        .map((u, j) =>
          Promise.all([
            enrollTotp(apis[(i + j) % 2], FIRM, u),
            registerUser(apis[(i + j + 1) % 2], FIRM, `cm-${i + j}`),
          ]),
        ),
    );
  }
  for (const [i, u] of ['cu-0', 'cu-1', 'cu-2'].entries()) {
    expectOk(
      await apis[i % 2].post(`${mfaPath(FIRM, u)}/reset`, superuserOf(FIRM), { reason: 'x' }),
    );
  }
  await Promise.all(['cu-0', 'cu-1', 'cu-2'].map((u, i) => enrollTotp(apis[i % 2], FIRM, u)));
}

/** The log holds the crossings and the queue the workload calls for, each email queued once. */
function checkQueue(events: RecordedEvent[]): RecordedEvent[] {
  const reached = events.filter((e) => e.type === 'LicenseUsageThresholdReached');
  expect(reached.map((e) => e.data.threshold)).toEqual([80, 100, 80, 100]);
  const queued = events.filter((e) => e.type === 'EmailQueued');
  const ids = queued.map((e) => String(e.data.messageId));
  expect(new Set(ids).size).toBe(ids.length);
  expect(countBy(queued, recipientAndKind)).toEqual({
    'boss@firm.example license-usage-80': 2,
    'boss@firm.example license-usage-100': 2,
    'billing@firm.example license-usage-80': 2,
    'billing@firm.example license-usage-100': 2,
    'billing@firm.example enrollment-invitation': 1,
    ...Object.fromEntries(
      Array.from({ length: 12 }, (_, i) => [`cm-${i}@firm.example enrollment-invitation`, 1]),
    ),
  });
  return queued;
}

const recipientAndKind = (q: RecordedEvent) =>
  `${(q.data.recipient as { email: string }).email} ${String(q.data.notification)}`;

/** How many of `items` fall under each key: a duplicate shows as a 2. */
function countBy<T>(items: readonly T[], key: (item: T) => string): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const item of items) counts[key(item)] = (counts[key(item)] ?? 0) + 1;
  return counts;
}

interface ManagerHealth {
  name: string;
  status: string;
  position: string;
}

/** Which of `apis` runs the mailer (holds its lease); waits until one does. */
async function mailerOwner(apis: Api[]): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    for (const [i, api] of apis.entries()) {
      const managers = (await api.get('/health')).body.processManagers as ManagerHealth[];
      const mailer = managers.find((m) => m.name === 'notification-mailer');
      if (mailer && mailer.status !== 'standby' && mailer.status !== 'starting') return i;
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error('no instance runs the mailer');
}

/**
 * The instances have processed the whole log and have nothing left to send:
 * each process manager runs on one of them (a standby instance shows it as
 * `standby`) and is at the head, and no instance has an email pending. An email on its way moves the log past
 * the head (its EmailSent): then wait for that position.
 */
async function settled(apis: Api[], log: SqliteEventStore): Promise<void> {
  for (let attempt = 0; attempt < 1_000; attempt++) {
    const head = await log.headPosition();
    let quiet = true;
    let pending = false;
    const names = new Set<string>();
    const running = new Set<string>();
    for (const api of apis) {
      expect(
        (await api.get(`/v1/firms/${FIRM}/mfa/usage?minPosition=${head}`, superuserOf(FIRM)))
          .status,
      ).toBe(200);
      const health = (await api.get('/health')).body;
      const managers = health.processManagers as ManagerHealth[];
      if (health.mail.pending > 0) pending = true;
      for (const manager of managers) {
        names.add(manager.name);
        if (manager.status === 'standby') continue;
        running.add(manager.name);
        if (BigInt(manager.position) < head) quiet = false;
      }
    }
    // Right after an owner died, nobody may run its process managers yet.
    if (running.size < names.size || pending) quiet = false;
    if (quiet && (await log.headPosition()) === head) return;
    if (running.size < names.size) await new Promise((resolve) => setTimeout(resolve, 100));
    else if (pending) {
      await apis[0].get(`/v1/firms/${FIRM}/mfa/usage?minPosition=${head + 1n}`, superuserOf(FIRM));
    }
  }
  throw new Error('the instances did not settle');
}
