import { join } from 'node:path';
import { ALL_PROJECTIONS } from '../../projections';
import { EVENT_STORE, EventStore } from '../../src/event-store/event-store.port';
import { ProjectionEngine } from '../../src/projection-engine/projection-engine';
import { READ_MODEL_STORE, ReadModelStore } from '../../src/read-model/read-model-store.port';
import { streams } from '../../src/shared/ids';
import {
  RunningService,
  startService,
  TEST_JWT_SECRET,
  TEST_MASTER_KEY,
  token,
} from '../support/harness';
import { LogWriter } from '../support/log-events';
import { requireBuild, ROOT, run } from '../support/processes';

/*
 * The operator's view: a poison event is quarantined by the projection it
 * breaks, which goes on, and shows in /health until `npm run projections --
 * skip`; `npm run projections -- rebuild` on a running service gives read
 * models equal, byte for byte, to the live ones, and the service switches to
 * them.
 */
const CLI = join(ROOT, 'dist', 'src', 'cli', 'projections.js');
const host = token('host');
const operator = token('operator');

function cli(dataDir: string, ...args: string[]) {
  return run(process.execPath, [CLI, ...args], {
    PATH: process.env.PATH,
    DATA_DIR: dataDir,
    MFA_JWT_SECRET: TEST_JWT_SECRET,
    MFA_MASTER_KEY: TEST_MASTER_KEY,
  });
}

/** Every document of every served read model, as stored. */
async function snapshot(service: RunningService): Promise<string> {
  const store = service.app.get<ReadModelStore>(READ_MODEL_STORE);
  const active = await store.activeGenerations();
  const parts: string[] = [];
  for (const projection of ALL_PROJECTIONS) {
    const target = { projection: projection.name, generation: active.get(projection.name)! };
    for (const collection of projection.collections) {
      for (const row of await store.scan(target, collection.name)) {
        parts.push(`${projection.name}/${collection.name}/${row.id} ${JSON.stringify(row.doc)}`);
      }
    }
  }
  return parts.join('\n');
}

/** Waits for another process's decision to reach this service (it looks twice a second). */
async function until(condition: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error('condition not met within 10 s');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe('Projections under an operator', () => {
  let service: RunningService;
  let log: LogWriter;

  beforeAll(() => requireBuild());
  beforeEach(async () => {
    service = await startService();
    log = new LogWriter(service.app.get<EventStore>(EVENT_STORE));
  });
  afterEach(() => service.stop());

  it('a poison event is quarantined by the projection it breaks, shows in /health, and skip clears it', async () => {
    const { api } = service;
    await api.put('/v1/firms/acme/users/u-1', host, {
      role: 'case-manager',
      name: 'Ann',
      email: 'ann@example.com',
    });
    // A name that is not text: the enrolled-users list cannot be built from it.
    const poison = await log.append(streams.user('acme', 'u-bad'), 'acme', [
      'UserRegistered',
      {
        userId: 'u-bad',
        role: 'case-manager',
        corporationId: null,
        name: 42,
        email: 'x@example.com',
      },
    ]);
    await log.confirmFactor('acme', 'u-1', 'f-1', 'totp');
    const later = await log.assignSeat('acme', 'u-1');

    // Every projection goes on, the one it breaks too.
    const usage = await api.get(`/v1/firms/acme/mfa/usage?minPosition=${later}`, operator);
    expect(usage.body.seatsInUse).toBe(1);
    const counters = await api.get(`/v1/firms/acme/mfa/counters?minPosition=${later}`, operator);
    expect(counters.body.enrolled.caseManagers).toBe(1);
    const list = await api.get(`/v1/firms/acme/mfa/enrolled-users?minPosition=${later}`, operator);
    expect(list.body.items.map((u: any) => u.userId)).toEqual(['u-1']);
    // The details are the operator's; the public answer has counts only.
    const health = await api.get('/health', operator);
    expect(health.body.status).toBe('degraded');
    const broken = health.body.projections.find((p: any) => p.name === 'enrolled-users');
    expect(broken).toMatchObject({
      status: 'live',
      position: later,
      quarantined: 1,
      quarantinedEvents: [
        {
          position: poison,
          eventType: 'UserRegistered',
          reason: 'UserRegistered.name is not a string',
        },
      ],
    });
    expect(JSON.stringify(broken)).not.toMatch(/\bat .*\.ts:\d+/);
    for (const other of health.body.projections.filter((p: any) => p.name !== 'enrolled-users')) {
      expect(other).toMatchObject({ status: 'live', quarantined: 0 });
    }

    const skipped = await cli(
      service.dataDir,
      'skip',
      'enrolled-users',
      poison,
      'bad name from host',
    );
    expect(skipped).toMatchObject({ code: 0 });
    await until(async () => (await api.get('/health')).body.status === 'ok');
    const after = (await api.get('/health', operator)).body.projections.find(
      (p: any) => p.name === 'enrolled-users',
    );
    expect(after).toMatchObject({
      quarantined: 0,
      skipped: 1,
      skippedEvents: [{ position: poison, note: 'bad name from host' }],
    });
  });

  it('rebuild from zero while running equals the live read models, byte for byte', async () => {
    const { api } = service;
    const superuser = token('superuser', { firm: 'acme' });
    await api.post('/v1/firms/acme/mfa/subscription/request', superuser, {});
    await api.post('/v1/firms/acme/mfa/subscription/activate', operator, {
      licenseCount: 10,
      plan: 'standard',
    });
    await api.put('/v1/firms/acme/mfa/enablement/corporations', superuser, {
      mode: 'all',
      corpUsers: true,
    });
    for (let i = 0; i < 12; i++) {
      const corporate = i % 3 === 0;
      await api.put(`/v1/firms/acme/users/u-${i}`, host, {
        role: corporate ? 'corp-user' : 'case-manager',
        ...(corporate ? { corporationId: `c-${i % 2}` } : {}),
        name: `User ${12 - i}`,
        email: `u${i}@example.com`,
        organization: i % 2 ? 'Acme' : null,
      });
      if (i % 2 === 0) {
        await log.confirmFactor('acme', `u-${i}`, `f-${i}`, i % 4 ? 'totp' : 'webauthn');
        await log.assignSeat('acme', `u-${i}`);
      }
    }
    await api.post('/v1/firms/acme/users/u-3/deactivate', host, { reason: 'deleted' });
    await log.resetEnrollment('acme', 'u-4', ['f-4']);
    await log.releaseSeat('acme', 'u-4');
    await api.put('/v1/firms/acme/corporations/c-1', host, { name: 'Globex' });
    const head = String(await service.app.get<EventStore>(EVENT_STORE).headPosition());
    const paths = ['mfa/usage', 'mfa/counters', 'mfa/enrolled-users', 'corporations'];
    const before = await Promise.all(
      paths.map((p) => api.get(`/v1/firms/acme/${p}?minPosition=${head}`, superuser)),
    );
    const live = await snapshot(service);
    const engine = service.app.get(ProjectionEngine);
    const generations = () => engine.health(0n).projections.map((p) => p.generation);
    const served = generations();

    const rebuilt = await cli(service.dataDir, 'rebuild');
    expect(rebuilt.code).toBe(0);
    expect(rebuilt.stderr).toMatch(/100%\s+[\d,]+ events\s+[\d,]+ events\/s/);
    // The rebuilt generations are now the active ones in the store: compare them as stored.
    expect(await snapshot(service)).toBe(live);

    await until(async () => generations().every((g, i) => g > served[i]));
    const after = await Promise.all(paths.map((p) => api.get(`/v1/firms/acme/${p}`, superuser)));
    expect(after.map((r) => r.body)).toEqual(before.map((r) => r.body));
  });
});
