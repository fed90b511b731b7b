import Database from 'better-sqlite3';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { ALL_PROJECTIONS } from '../../projections';
import { EVENT_STORE, EventStore } from '../../src/event-store/event-store.port';
import type { ProcessManager } from '../../src/projection-engine/process-manager';
import { PROCESS_MANAGERS } from '../../src/projection-engine/projections.module';
import { ProjectionEngine } from '../../src/projection-engine/projection-engine';
import { streams } from '../../src/shared/ids';
import {
  Api,
  RunningService,
  startService,
  TEST_JWT_SECRET,
  TEST_MASTER_KEY,
  token,
} from '../support/harness';
import { LogWriter, newEvent } from '../support/log-events';
import { requireBuild, ROOT, run } from '../support/processes';

/*
 * Bad events in the log, seen from the consumers (DESIGN §6). An event type no
 * code knows passes every projection, process manager and rebuild without
 * effect. A corrupt event (data that is not JSON, a missing field) is
 * quarantined by each consumer that reads its type, shown in /health and by
 * `npm run projections`, and stops no other consumer and no firm; an operator
 * skips it or replays it once fixed. A skip must name an event the consumer
 * failed on.
 */
const CLI = join(ROOT, 'dist', 'src', 'cli', 'projections.js');
const host = token('host');
const operator = token('operator');
const DASHBOARDS = ['mfa/usage', 'mfa/counters', 'mfa/enrolled-users', 'corporations'];

function cli(dataDir: string, ...args: string[]) {
  return run(process.execPath, [CLI, ...args], {
    PATH: process.env.PATH,
    DATA_DIR: dataDir,
    MFA_JWT_SECRET: TEST_JWT_SECRET,
    MFA_MASTER_KEY: TEST_MASTER_KEY,
  });
}

/**
 * Writes a row straight into the log file, as a damaged disk, a bad restore or
 * a hand edit could leave it, beside the running service. Answers its position.
 */
function writeRawRow(dataDir: string, streamId: string, type: string, data: string): string {
  const metadata = JSON.stringify(newEvent('acme', type, {}).metadata);
  const db = new Database(join(dataDir, 'events.sqlite'));
  try {
    db.pragma('busy_timeout = 10000');
    const revision = db
      .prepare('SELECT coalesce(max(revision), -1) + 1 FROM events WHERE stream_id = ?')
      .pluck()
      .get(streamId) as number;
    const info = db
      .prepare(
        'INSERT INTO events (event_id, stream_id, revision, type, data, metadata) VALUES (?, ?, ?, ?, ?, ?)',
      )
      .run(randomUUID(), streamId, revision, type, data, metadata);
    return String(info.lastInsertRowid);
  } finally {
    db.close();
  }
}

/** Mends a damaged row, as restoring it from a backup would. */
function mendRow(dataDir: string, position: string, data: object): void {
  const db = new Database(join(dataDir, 'events.sqlite'));
  try {
    db.pragma('busy_timeout = 10000');
    db.prepare('UPDATE events SET data = ? WHERE position = ?').run(
      JSON.stringify(data),
      BigInt(position),
    );
  } finally {
    db.close();
  }
}

/** Waits for another process's decision to reach this service (it looks twice a second). */
async function until(condition: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error('condition not met within 15 s');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

interface ConsumerHealth {
  name: string;
  status: string;
  position: string;
  quarantined: number;
  skipped: number;
  quarantinedEvents: Array<{ position: string; eventType: string; reason: string; at: string }>;
  skippedEvents: Array<{ position: string; note: string; recordedAt: string }>;
}

async function consumers(api: Api): Promise<Map<string, ConsumerHealth>> {
  const health = (await api.get('/health', operator)).body;
  return new Map(
    [...health.projections, ...health.processManagers].map((c: ConsumerHealth) => [c.name, c]),
  );
}

describe('Bad events in the log', () => {
  let service: RunningService;
  let api: Api;
  let log: LogWriter;
  let eventStore: EventStore;
  let managers: readonly ProcessManager[];

  beforeAll(() => requireBuild());
  beforeEach(async () => {
    service = await startService();
    api = service.api;
    eventStore = service.app.get<EventStore>(EVENT_STORE);
    log = new LogWriter(eventStore);
    managers = service.app.get<ProcessManager[]>(PROCESS_MANAGERS);
  });
  afterEach(() => service.stop());

  const head = async () => String(await eventStore.headPosition());

  /** An active subscription; with `enable`, case managers are MFA-enabled (the policy then invites them). */
  async function activeFirm(firm: string, { enable = true } = {}) {
    const superuser = token('superuser', { firm });
    expect((await api.post(`/v1/firms/${firm}/mfa/subscription/request`, superuser)).status).toBe(
      200,
    );
    const activated = await api.post(`/v1/firms/${firm}/mfa/subscription/activate`, operator, {
      licenseCount: 10,
      plan: 'standard',
    });
    expect(activated.status).toBe(200);
    if (!enable) return;
    const enabled = await api.put(`/v1/firms/${firm}/mfa/enablement/case-managers`, superuser, {
      enabled: true,
    });
    expect(enabled.status).toBe(200);
  }

  async function register(firm: string, userId: string) {
    const registered = await api.put(`/v1/firms/${firm}/users/${userId}`, host, {
      role: 'case-manager',
      name: `Name of ${userId}`,
      email: `${userId}@example.com`,
    });
    expect(registered.status).toBe(200);
    return registered.body.position as string;
  }

  /** The names of every consumer that reads `type`: the projections and process managers handling it. */
  const readersOf = (type: string) => [
    ...ALL_PROJECTIONS.filter((p) => p.handles.includes(type)).map((p) => p.name),
    ...managers.filter((m) => !m.handles || m.handles.includes(type)).map((m) => m.name),
  ];

  it('a corrupt row stops no consumer and no firm: each consumer that reads its type quarantines it', async () => {
    await activeFirm('acme');
    await register('acme', 'u-1');
    const notJson = writeRawRow(
      service.dataDir,
      streams.user('acme', 'u-bad'),
      'UserRegistered',
      '{"userId": "u-bad", "name": ',
    );
    const notObject = writeRawRow(
      service.dataDir,
      streams.user('acme', 'u-bad'),
      'FactorConfirmed',
      '[1, 2]',
    );
    // Later events of another firm and of the same firm.
    await activeFirm('globex');
    await register('globex', 'u-9');
    await log.confirmFactor('globex', 'u-9', 'f-9', 'totp');
    await register('acme', 'u-2');
    await log.confirmFactor('acme', 'u-1', 'f-1', 'totp');
    const last = await head();

    for (const firm of ['acme', 'globex']) {
      const superuser = token('superuser', { firm });
      for (const path of DASHBOARDS) {
        const answer = await api.get(`/v1/firms/${firm}/${path}?minPosition=${last}`, superuser);
        expect({ path, status: answer.status }).toEqual({ path, status: 200 });
      }
    }
    const engine = service.app.get(ProjectionEngine);
    expect(
      await engine.waitFor(
        BigInt(last),
        managers.map((m) => m.name),
        10_000,
      ),
    ).toBe(true);
    const counters = await api.get(`/v1/firms/acme/mfa/counters?minPosition=${last}`, operator);
    expect(counters.body.enabled.caseManagers).toBe(2);
    const globex = await api.get(
      `/v1/firms/globex/mfa/enrolled-users?minPosition=${last}`,
      operator,
    );
    expect(globex.body.items.map((u: { userId: string }) => u.userId)).toEqual(['u-9']);

    const health = await api.get('/health', operator);
    expect(health.body.status).toBe('degraded');
    const byName = await consumers(api);
    const expected = new Map<string, Array<[string, string, string]>>();
    for (const [position, type, reason] of [
      [notJson, 'UserRegistered', 'data is not valid JSON'],
      [notObject, 'FactorConfirmed', 'data is not a JSON object (array)'],
    ]) {
      for (const name of readersOf(type)) {
        expected.set(name, [...(expected.get(name) ?? []), [position, type, reason]]);
      }
    }
    expect(expected.size).toBeGreaterThanOrEqual(5);
    for (const [name, consumer] of byName) {
      const mine = expected.get(name) ?? [];
      expect({ name, status: consumer.status }).toEqual({ name, status: 'live' });
      expect(BigInt(consumer.position)).toBeGreaterThanOrEqual(BigInt(last));
      expect({ name, quarantined: consumer.quarantined, skipped: consumer.skipped }).toEqual({
        name,
        quarantined: mine.length,
        skipped: 0,
      });
      expect(consumer.quarantinedEvents.map((q) => [q.position, q.eventType, q.reason])).toEqual(
        mine,
      );
    }

    const status = await cli(service.dataDir, 'status');
    expect(status).toMatchObject({ code: 0, stderr: '' });
    expect(status.stdout).toMatch(/^enrolled-users\s.*quarantined 2\s+skipped 0$/m);
    expect(status.stdout).toMatch(/^seat-keeper\s.*quarantined 1\s+skipped 0$/m);
    expect(status.stdout).toMatch(/^license-usage\s.*quarantined 0\s+skipped 0$/m);
    const listed = await cli(service.dataDir, 'quarantine', 'seat-keeper');
    expect(listed.code).toBe(0);
    expect(listed.stdout.trim().split('\n')).toEqual([
      expect.stringMatching(
        new RegExp(
          `^seat-keeper\\s+${notObject}\\s+FactorConfirmed\\s+user-acme/u-bad\\s+data is not a JSON object \\(array\\)`,
        ),
      ),
    ]);
    const all = await cli(service.dataDir, 'quarantine');
    const total = [...expected.values()].reduce((n, list) => n + list.length, 0);
    expect(all.stdout.trim().split('\n')).toHaveLength(total);
  });

  it('refuses a skip that names no event the consumer failed on; a later real event still reaches the dashboards', async () => {
    const superuser = token('superuser', { firm: 'acme' });
    // No subscription: no process manager appends anything behind the test's back.
    await register('acme', 'u-1');
    const good = await head();
    const bad = writeRawRow(
      service.dataDir,
      streams.user('acme', 'u-bad'),
      'FactorConfirmed',
      'null',
    );
    const next = (BigInt(await head()) + 1n).toString();

    for (const [why, args] of [
      ['past the end of the log', ['enrolled-users', next]],
      ['an event the consumer applied', ['enrolled-users', good]],
      ['an event another consumer failed on', ['corporations', bad]],
      ['a consumer that does not exist', ['no-such-thing', bad]],
      ['not a position', ['enrolled-users', '12x']],
    ]) {
      const refused = await cli(service.dataDir, 'skip', ...args);
      expect({ why, code: refused.code, stdout: refused.stdout }).toEqual({
        why,
        code: 2,
        stdout: '',
      });
      expect(refused.stderr.trim().split('\n')).toHaveLength(1);
    }

    // The next event lands exactly where the refused skip pointed.
    const confirmed = await log.confirmFactor('acme', 'u-1', 'f-1', 'totp');
    expect(confirmed).toBe(next);
    const list = await api.get(`/v1/firms/acme/mfa/enrolled-users?minPosition=${next}`, superuser);
    expect(list.body.items.map((u: { userId: string }) => u.userId)).toEqual(['u-1']);
    // A rebuild honours recorded skips: none was recorded, so it still has u-1.
    const engine = service.app.get(ProjectionEngine);
    const generations = () => engine.health(0n).projections.map((p) => p.generation);
    const served = generations();
    expect((await cli(service.dataDir, 'rebuild', 'enrolled-users')).code).toBe(0);
    await until(async () => generations()[0] > served[0]);
    const rebuilt = await api.get('/v1/firms/acme/mfa/enrolled-users', superuser);
    expect(rebuilt.body.items.map((u: { userId: string }) => u.userId)).toEqual(['u-1']);

    // An event the consumer did fail on may be skipped, a projection's or a process manager's.
    for (const name of ['enrolled-users', 'seat-keeper']) {
      const skipped = await cli(service.dataDir, 'skip', name, bad, 'lost', 'on', 'restore');
      expect({ name, code: skipped.code, stderr: skipped.stderr }).toEqual({
        name,
        code: 0,
        stderr: '',
      });
    }
    await until(async () => {
      const byName = await consumers(api);
      return (
        byName.get('enrolled-users')!.skipped === 1 && byName.get('seat-keeper')!.skipped === 1
      );
    });
    const byName = await consumers(api);
    for (const name of ['enrolled-users', 'seat-keeper']) {
      expect(byName.get(name)).toMatchObject({
        quarantined: 0,
        quarantinedEvents: [],
        skipped: 1,
        skippedEvents: [{ position: bad, note: 'lost on restore' }],
      });
    }
    // role-counters read the event too and has not been told to skip it.
    expect(byName.get('role-counters')).toMatchObject({ quarantined: 1, skipped: 0 });
    const status = await cli(service.dataDir, 'status');
    expect(status.stdout).toMatch(/^seat-keeper\s.*quarantined 0\s+skipped 1$/m);
    expect(status.stdout).toMatch(new RegExp(`^\\s+skipped\\s+${bad}\\s+lost on restore`, 'm'));
    // Twice is refused: it is no longer an event the consumer failed on.
    expect((await cli(service.dataDir, 'skip', 'seat-keeper', bad)).code).toBe(2);
  });

  it('an event type no code knows passes every projection, process manager and a rebuild without effect', async () => {
    const superuser = token('superuser', { firm: 'acme' });
    // Nobody MFA-enabled and the seat taken here: no process manager appends behind the test's back.
    await activeFirm('acme', { enable: false });
    await register('acme', 'u-1');
    // Written by a newer version: in the user's own stream and in a stream of its own. The
    // folds of the command side pass over it too (the seat keeper folds the user's stream).
    await log.append('user-acme/u-1', 'acme', [
      'MfaGracePeriodGranted',
      { userId: 'u-1', days: 7, grantedAt: '2026-01-15T09:00:00.000Z' },
    ]);
    await log.append('passkey-acme/u-1', 'acme', [
      'PasskeyNicknamed',
      { userId: 'u-1', factorId: 'f-1', nickname: 'blue key' },
    ]);
    await log.confirmFactor('acme', 'u-1', 'f-1', 'totp');
    await log.assignSeat('acme', 'u-1');
    const last = await head();
    const before = await Promise.all(
      DASHBOARDS.map((p) => api.get(`/v1/firms/acme/${p}?minPosition=${last}`, superuser)),
    );
    expect(before.map((r) => r.status)).toEqual([200, 200, 200, 200]);
    const engine = service.app.get(ProjectionEngine);
    expect(
      await engine.waitFor(
        BigInt(last),
        managers.map((m) => m.name),
        10_000,
      ),
    ).toBe(true);
    const health = (await api.get('/health')).body;
    expect(health.status).toBe('ok');
    for (const consumer of (await consumers(api)).values()) {
      expect({ name: consumer.name, quarantined: consumer.quarantined }).toEqual({
        name: consumer.name,
        quarantined: 0,
      });
    }
    const generations = () => engine.health(0n).projections.map((p) => p.generation);
    const served = generations();
    const rebuilt = await cli(service.dataDir, 'rebuild');
    expect(rebuilt.code).toBe(0);
    expect(rebuilt.stdout).not.toMatch(/quarantin/i);
    await until(async () => generations().every((g, i) => g > served[i]));
    const after = await Promise.all(
      DASHBOARDS.map((p) => api.get(`/v1/firms/acme/${p}`, superuser)),
    );
    expect(after.map((r) => r.body)).toEqual(before.map((r) => r.body));

    // Item 13: the user's login decision and deactivation are decided on the stream that holds
    // the unknown type, never a 500.
    const host = token('host');
    const decision = await api.get('/v1/firms/acme/users/u-1/mfa/login-requirement', host);
    expect(decision.status).toBe(200);
    expect(decision.body.decision).toBe('off');
    const deactivated = await api.post('/v1/firms/acme/users/u-1/deactivate', host, {
      reason: 'deleted',
    });
    expect(deactivated.status).toBe(200);
  });

  it('replays a quarantined event once fixed: a projection by rebuilding it, a process manager by handling it again', async () => {
    await activeFirm('acme');
    await register('acme', 'u-1');
    const registration = {
      userId: 'u-bad',
      role: 'case-manager',
      corporationId: null,
      name: 'Bea Dee',
      email: 'bea@example.com',
      organization: null,
      billingContact: false,
      firmAdmin: false,
    };
    const bad = writeRawRow(
      service.dataDir,
      streams.user('acme', 'u-bad'),
      'UserRegistered',
      JSON.stringify(registration).slice(0, 30),
    );
    await register('acme', 'u-2');
    const last = await head();
    const counters = await api.get(`/v1/firms/acme/mfa/counters?minPosition=${last}`, operator);
    expect(counters.body.enabled.caseManagers).toBe(2);

    // Not fixed yet: the rebuild quarantines it again, and says so.
    const early = await cli(service.dataDir, 'replay', 'role-counters', bad);
    expect(early.code).toBe(1);
    expect(early.stdout).toMatch(new RegExp(`position ${bad} .*still quarantined`));

    mendRow(service.dataDir, bad, registration);
    const engine = service.app.get(ProjectionEngine);
    const served = () =>
      engine.health(0n).projections.find((p) => p.name === 'role-counters')!.generation;
    const replayed = await cli(service.dataDir, 'replay', 'role-counters', bad);
    expect(replayed.code).toBe(0);
    expect(replayed.stdout).toMatch(new RegExp(`position ${bad} applied`));
    const rebuilt = Number(/as generation (\d+), now served/.exec(replayed.stdout)![1]);
    await until(async () => served() === rebuilt);
    const fixed = await api.get('/v1/firms/acme/mfa/counters', operator);
    expect(fixed.body.enabled.caseManagers).toBe(3);
    const requested = await cli(service.dataDir, 'replay', 'notification-policy', bad);
    expect(requested).toMatchObject({ code: 0, stderr: '' });
    await until(async () => (await consumers(api)).get('notification-policy')!.quarantined === 0);
    const byName = await consumers(api);
    expect(byName.get('role-counters')!.quarantined).toBe(0);
    // Replayed by those two only: the others still hold it in quarantine.
    expect(byName.get('enrolled-users')!.quarantined).toBe(1);
    // The policy handled the registration: u-bad is invited to enroll.
    const invitations = (await service.events()).filter(
      (e) =>
        e.type === 'EmailQueued' &&
        e.data.notification === 'enrollment-invitation' &&
        (e.data.recipient as { userId: string }).userId === 'u-bad',
    );
    expect(invitations).toHaveLength(1);
    // A position that is not quarantined for the consumer is refused.
    expect((await cli(service.dataDir, 'replay', 'role-counters', bad)).code).toBe(2);
  });

  it('the CLI prints its usage on --help, and answers a bad option, command or argument in one line with exit 2', async () => {
    const help = await cli(service.dataDir, '--help');
    expect(help).toMatchObject({ code: 0, stderr: '' });
    for (const command of ['status', 'quarantine', 'skip', 'replay', 'rebuild']) {
      expect(help.stdout).toContain(command);
    }
    for (const args of [
      ['status', '--verbose'],
      ['purge'],
      [],
      ['skip', 'enrolled-users'],
      ['replay', 'enrolled-users', '1', '2'],
      ['quarantine', 'no-such-thing'],
      ['rebuild', 'no-such-thing'],
    ]) {
      const answer = await cli(service.dataDir, ...args);
      expect({ args, code: answer.code, stdout: answer.stdout }).toEqual({
        args,
        code: 2,
        stdout: '',
      });
      expect(answer.stderr.trim().split('\n')).toHaveLength(1);
      expect(answer.stderr).not.toMatch(/\bat .*\.js:\d+/);
    }
  });
});
