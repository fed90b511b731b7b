import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { SqliteEventStore } from '../../src/event-store/sqlite-event-store';
import { Api, readLog, tempDir, token } from '../support/harness';
import { requireBuild, ROOT, spawnService } from '../support/processes';

/**
 * Two processes on the same SQLite files append to one stream, each at the
 * revision it read. SQLite's write lock and the expected-revision check inside
 * it must make exactly one writer win each revision, and lose nothing.
 */
describe('two processes appending to the same stream', () => {
  let dir: string;
  beforeAll(() => requireBuild());
  beforeEach(() => (dir = tempDir('mfa-two-')));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('exactly one wins each revision; no event is lost or doubled', async () => {
    const file = join(dir, 'events.sqlite');
    // Create the file first so that both workers open an existing WAL database.
    const setup = new SqliteEventStore(file);
    await setup.close();
    const perWorker = 150;
    const workers = ['A', 'B'].map((name) =>
      spawn(
        process.execPath,
        [
          join(ROOT, 'test/support/append-worker.js'),
          file,
          'counter-shared',
          name,
          String(perWorker),
        ],
        {
          stdio: ['pipe', 'pipe', 'inherit'],
        },
      ),
    );
    const outputs = workers.map((child) => {
      let text = '';
      child.stdout.on('data', (chunk: Buffer) => (text += chunk.toString()));
      return {
        ready: once(child.stdout, 'data'),
        done: once(child, 'close').then(([code]) => ({ code, text })),
      };
    });
    await Promise.all(outputs.map((o) => o.ready));
    for (const child of workers) child.stdin.write('go\n');
    const results = await Promise.all(outputs.map((o) => o.done));
    for (const result of results) expect(result.code).toBe(0);
    const attempts = results.flatMap(
      (r) =>
        JSON.parse(r.text.split('\n')[1]) as Array<{
          expected: string;
          eventId: string;
          won: boolean;
        }>,
    );

    const store = new SqliteEventStore(file);
    const events = await store.readStream('counter-shared');
    await store.close();

    expect(events).toHaveLength(2 * perWorker);
    expect(events.map((e) => e.revision)).toEqual(events.map((_, i) => BigInt(i)));
    const winners = attempts.filter((a) => a.won);
    expect(new Set(events.map((e) => e.metadata.eventId))).toEqual(
      new Set(winners.map((a) => a.eventId)),
    );
    // One winner per expected revision: the revision before each event, 'no_stream' for the first.
    const wonAt = winners.map((a) => a.expected).sort();
    expect(new Set(wonAt).size).toBe(wonAt.length);
    // Both really competed: some attempts lost a race.
    expect(attempts.some((a) => !a.won)).toBe(true);
    for (const name of ['A', 'B']) {
      expect(events.filter((e) => e.data.worker === name).map((e) => e.data.n)).toEqual(
        Array.from({ length: perWorker }, (_, i) => i),
      );
    }
  });
});

/** Two service instances on one DATA_DIR, as two replicas of the embedded deployment would run. */
describe('two service processes on the same data folder', () => {
  let dir: string;
  beforeEach(() => (dir = tempDir('mfa-two-svc-')));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('commands sent to both land once each, decided on fresh state', async () => {
    const services = [await spawnService(dir), await spawnService(dir)];
    const apis = services.map((s) => new Api(s.url));
    const host = token('host');
    try {
      const writes = await Promise.all(
        Array.from({ length: 40 }, (_, i) =>
          apis[i % 2].put('/v1/firms/acme/users/shared', host, {
            role: 'case-manager',
            name: `Name ${i}`,
            email: 'shared@firm.example',
          }),
        ),
      );
      for (const res of writes) expect(res.status).toBe(200);
      // An idempotent retry sent to the other instance answers the first answer.
      const key = { 'idempotency-key': 'cross-instance' };
      const body = { role: 'case-manager', name: 'Keyed', email: 'keyed@firm.example' };
      const first = await apis[0].put('/v1/firms/acme/users/keyed', host, body, key);
      const retry = await apis[1].put('/v1/firms/acme/users/keyed', host, body, key);
      expect(retry.body).toEqual(first.body);
      expect(retry.headers.get('idempotent-replayed')).toBe('true');
    } finally {
      await Promise.all(services.map((s) => s.stop()));
    }
    const log = await readLog(dir);
    const shared = log.filter((e) => e.streamId === 'user-acme/shared');
    expect(shared).toHaveLength(40);
    expect(shared.map((e) => e.revision)).toEqual(shared.map((_, i) => BigInt(i)));
    expect(log.filter((e) => e.streamId === 'user-acme/keyed')).toHaveLength(1);
    // Two processes to start and 40 concurrent writes: more than the default 30 s on a loaded machine.
  }, 90_000);
});
