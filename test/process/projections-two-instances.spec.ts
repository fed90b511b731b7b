import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { ALL_PROJECTIONS } from '../../projections';
import { SqliteEventStore } from '../../src/event-store/sqlite-event-store';
import { schemaOf } from '../../src/projection-engine/projection-engine';
import { rebuildProjections } from '../../src/projection-engine/rebuild';
import { SqliteReadModelStore } from '../../src/read-model/sqlite-read-model-store';
import { Api, tempDir, token } from '../support/harness';
import { requireBuild, ServiceProcess, spawnService } from '../support/processes';

/*
 * Two service processes on one data folder both run every projection into the
 * same read models. The checkpoint compare-and-set (docs/decisions/0009) lets
 * exactly one of them commit each batch; the other reloads. Nothing is lost or
 * counted twice: both answer the same numbers, and they equal a rebuild from zero.
 */
const host = token('host');
const superuser = token('superuser', { firm: 'acme' });
const PATHS = ['mfa/usage', 'mfa/counters', 'mfa/enrolled-users?limit=200', 'corporations'];

async function snapshot(store: SqliteReadModelStore): Promise<string> {
  const active = await store.activeGenerations();
  const parts: string[] = [];
  for (const projection of ALL_PROJECTIONS) {
    const target = { projection: projection.name, generation: active.get(projection.name)! };
    await store.prepare(schemaOf(projection), target.generation);
    for (const collection of projection.collections) {
      for (const row of await store.scan(target, collection.name)) {
        parts.push(`${projection.name}/${collection.name}/${row.id} ${JSON.stringify(row.doc)}`);
      }
    }
  }
  return parts.join('\n');
}

describe('two service instances on one data folder', () => {
  let dir: string;
  let services: ServiceProcess[] = [];
  beforeAll(() => requireBuild());
  beforeEach(() => (dir = tempDir('mfa-two-instances-')));
  afterEach(async () => {
    await Promise.all(services.map((s) => s.stop('SIGKILL')));
    services = [];
    rmSync(dir, { recursive: true, force: true });
  });

  it('both run every projection; the read models stay exact', async () => {
    services = [await spawnService(dir), await spawnService(dir)];
    const apis = services.map((s) => new Api(s.url));
    const users = 120;
    // Commands alternate between the instances, eight at a time.
    for (let i = 0; i < users; i += 8) {
      const answers = await Promise.all(
        Array.from({ length: 8 }, (_, j) => {
          const n = i + j;
          const corporate = n % 3 === 0;
          return apis[n % 2].put(`/v1/firms/acme/users/u-${n}`, host, {
            role: corporate ? 'corp-user' : 'case-manager',
            ...(corporate ? { corporationId: `c-${n % 4}` } : {}),
            name: `User ${n}`,
            email: `u${n}@example.com`,
          });
        }),
      );
      for (const answer of answers) expect(answer.status).toBe(200);
      if (i % 16 === 0) {
        const deactivated = await apis[(i / 8) % 2].post(
          `/v1/firms/acme/users/u-${i}/deactivate`,
          host,
          {
            reason: 'deleted',
          },
        );
        expect(deactivated.status).toBe(200);
      }
    }
    const log = new SqliteEventStore(join(dir, 'events.sqlite'));
    // Caught up: both instances' read models at the head, their process managers too
    // (they may append on their own), and the head unmoved meanwhile.
    let answers: Array<Array<{ status: number; body: any }>> = [];
    for (let attempt = 0; ; attempt++) {
      expect(attempt).toBeLessThan(500);
      const head = await log.headPosition();
      answers = await Promise.all(
        apis.map((api) =>
          Promise.all(
            PATHS.map((p) =>
              api.get(
                `/v1/firms/acme/${p}${p.includes('?') ? '&' : '?'}minPosition=${head}`,
                superuser,
              ),
            ),
          ),
        ),
      );
      const health = await Promise.all(apis.map((api) => api.get('/health')));
      // Each process manager runs on one instance at a time; the other stands by.
      const all = health.flatMap(
        (h) => h.body.processManagers as Array<{ name: string; status: string; position: string }>,
      );
      const managers = all.filter((m) => m.status !== 'standby');
      if (
        managers.length === new Set(all.map((m) => m.name)).size &&
        managers.every((m) => BigInt(m.position) >= head) &&
        (await log.headPosition()) === head
      ) {
        break;
      }
    }
    for (const answer of answers.flat()) expect(answer.status).toBe(200);
    // Both instances serve the same numbers, and they are the right ones.
    expect(answers[1].map((a) => a.body)).toEqual(answers[0].map((a) => a.body));
    const corpUsers = Array.from({ length: users }, (_, n) => n).filter((n) => n % 3 === 0);
    const active = (n: number) => !(n % 16 === 0);
    const corporations = answers[0][3].body.items as Array<{
      corporationId: string;
      corpUsers: number;
    }>;
    for (const corporation of corporations) {
      const n = Number(corporation.corporationId.slice(2));
      expect(corporation.corpUsers).toBe(corpUsers.filter((u) => u % 4 === n && active(u)).length);
    }

    // Both really competed: batches one instance had applied were committed by the other first.
    expect(services.map((s) => s.output()).join('')).toMatch(/checkpoint moved by another writer/);

    const store = new SqliteReadModelStore(join(dir, 'readmodels.sqlite'));
    try {
      const live = await snapshot(store);
      await rebuildProjections(log, store, ALL_PROJECTIONS);
      expect(await snapshot(store)).toBe(live);
    } finally {
      await store.close();
      await log.close();
    }
  }, 120_000);
});
