import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { ALL_PROJECTIONS } from '../../projections';
import { SqliteEventStore } from '../../src/event-store/sqlite-event-store';
import { schemaOf } from '../../src/projection-engine/projection-engine';
import { rebuildProjections } from '../../src/projection-engine/rebuild';
import { SqliteReadModelStore } from '../../src/read-model/sqlite-read-model-store';
import { Api, tempDir, token } from '../support/harness';
import { LogWriter } from '../support/log-events';
import { requireBuild, ServiceProcess, spawnService } from '../support/processes';

/*
 * The service is killed (SIGKILL) at random moments while commands flow, several
 * times on the same data folder. After each restart and catch-up, every read
 * model equals a rebuild from zero, document for document: the checkpoint is
 * committed with the writes, so a crash neither loses nor doubles an update.
 *
 * The moments come from a seeded generator; the seed and each kill are logged,
 * and PROJECTIONS_CRASH_SEED=<seed> replays the same plan.
 */
const SEED = Number(process.env.PROJECTIONS_CRASH_SEED ?? Date.now() % 1_000_000);
const ROUNDS = 6;
const host = token('host');
const operator = token('operator');
const superuser = token('superuser', { firm: 'acme' });

function generator(seed: number) {
  let state = seed >>> 0 || 1;
  return (n: number) => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state % n;
  };
}

/** Every document of every served read model, as stored. */
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

/**
 * Waits until the restarted service has applied the whole log, process
 * managers included (they may append on their own, e.g. the seat keeper):
 * each read-model endpoint waits on `?minPosition=` the head, /health shows
 * the managers' positions, and the head must not have moved meanwhile.
 */
async function caughtUp(api: Api, log: SqliteEventStore): Promise<bigint> {
  for (let attempt = 0; attempt < 500; attempt++) {
    const head = await log.headPosition();
    for (const path of ['mfa/usage', 'mfa/counters', 'mfa/enrolled-users', 'corporations']) {
      const read = await api.get(`/v1/firms/acme/${path}?minPosition=${head}`, superuser);
      expect(read.status).toBe(200);
    }
    const health = await api.get('/health');
    const managers = health.body.processManagers as Array<{ position: string }>;
    if (managers.every((m) => BigInt(m.position) >= head) && (await log.headPosition()) === head) {
      return head;
    }
  }
  throw new Error('the service did not catch up with the log');
}

/**
 * A restarted instance takes over the process managers once the killed one's
 * leases expire (docs/decisions/0014): short leases keep the kills from slowing the test down.
 */
const LEASES = { PROCESS_LEASE_SECONDS: '2' };

describe('SIGKILL while commands flow', () => {
  let dir: string;
  let service: ServiceProcess | undefined;
  beforeAll(() => requireBuild());
  beforeEach(() => (dir = tempDir('mfa-crash-')));
  afterEach(async () => {
    await service?.stop('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  it(`after every restart the read models equal a rebuild from zero (seed ${SEED})`, async () => {
    const pick = generator(SEED);
    const log = new SqliteEventStore(join(dir, 'events.sqlite'));
    const writer = new LogWriter(log);
    const readModels = () => new SqliteReadModelStore(join(dir, 'readmodels.sqlite'));
    let user = 0;

    service = await spawnService(dir, LEASES);
    let api = new Api(service.url);
    await api.post('/v1/firms/acme/mfa/subscription/request', superuser, { plan: 'standard' });
    await api.post('/v1/firms/acme/mfa/subscription/activate', operator, {
      plan: 'standard',
      licenseCount: 500,
    });

    /** One random command: over HTTP, or (factors, seats) appended by this process. */
    const command = async (): Promise<void> => {
      const step = pick(10);
      const id = user > 0 ? `u-${pick(user)}` : 'u-0';
      if (step < 4 || user === 0) {
        const corporate = pick(3) === 0;
        const userId = `u-${user++}`;
        await api.put(`/v1/firms/acme/users/${userId}`, host, {
          role: corporate ? 'corp-user' : 'case-manager',
          ...(corporate ? { corporationId: `c-${pick(4)}` } : {}),
          name: `User ${pick(100)}`,
          email: `${userId}@example.com`,
          organization: pick(2) ? 'Acme' : null,
        });
      } else if (step < 7) {
        await writer.confirmFactor('acme', id, `f-${user}-${pick(1000)}`, 'totp');
        await writer.assignSeat('acme', id);
      } else if (step === 7) {
        await writer.resetEnrollment('acme', id, []);
        await writer.releaseSeat('acme', id);
      } else if (step === 8) {
        await api.post(
          `/v1/firms/acme/users/${id}/${pick(2) ? 'deactivate' : 'reactivate'}`,
          host,
          {
            reason: 'deleted',
          },
        );
      } else {
        await api.put(`/v1/firms/acme/corporations/c-${pick(4)}`, host, {
          name: `Corp ${pick(9)}`,
        });
      }
    };

    // One enrolled user that no random command touches (they pick u-N): every
    // round then compares an enrolled-users list that is not empty, however
    // few commands a loaded machine gets through before the kill.
    await api.put('/v1/firms/acme/users/anchor', host, {
      role: 'case-manager',
      name: 'Anchor',
      email: 'anchor@example.com',
    });
    await writer.confirmFactor('acme', 'anchor', 'f-anchor', 'totp');
    await writer.assignSeat('acme', 'anchor');

    for (let round = 1; round <= ROUNDS; round++) {
      // Four clients keep commands flowing; the kill lands somewhere in the middle.
      let flowing = true;
      const clients = Array.from({ length: 4 }, async () => {
        while (flowing) await command().catch(() => undefined);
      });
      const killAfterMs = 200 + pick(800);
      await new Promise((resolve) => setTimeout(resolve, killAfterMs));
      const head = await log.headPosition();
      console.log(
        `seed ${SEED}, round ${round}: SIGKILL after ${killAfterMs} ms, log head ~${head}`,
      );
      expect(await service.stop('SIGKILL')).toBe('SIGKILL');
      flowing = false;
      await Promise.all(clients);

      service = await spawnService(dir, LEASES);
      api = new Api(service.url);
      const position = String(await caughtUp(api, log));
      const store = readModels();
      try {
        const live = await snapshot(store);
        // Rebuilt from zero beside the served generations, then compared as stored.
        const results = await rebuildProjections(log, store, ALL_PROJECTIONS);
        for (const result of results) {
          expect(result).toMatchObject({
            quarantined: [],
            activated: true,
            position: BigInt(position),
          });
        }
        expect(await snapshot(store)).toBe(live);
        expect(live).toContain('enrolled-users/entries/');
      } finally {
        await store.close();
      }
    }
    await log.close();
  }, 120_000);
});
