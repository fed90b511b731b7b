import Database from 'better-sqlite3';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { put, Projection } from '../../src/projection-engine/projection';
import type { RecordedEvent } from '../../src/event-store/event-store.port';
import { SqliteEventStore } from '../../src/event-store/sqlite-event-store';
import type { ProcessManager } from '../../src/projection-engine/process-manager';
import { ProjectionEngine } from '../../src/projection-engine/projection-engine';
import { SqliteReadModelStore } from '../../src/read-model/sqlite-read-model-store';
import { TEST_JWT_SECRET, TEST_MASTER_KEY, tempDir } from '../support/harness';
import { LogWriter, newEvent } from '../support/log-events';
import { requireBuild, ROOT, run } from '../support/processes';

/*
 * The projection engine on the real SQLite stores, with a projection and a
 * process manager written for the test, so that each way an event can be bad
 * is met where it is handled (DESIGN §6): an event that cannot be read or
 * applied is quarantined by the consumer and passed; a process manager whose
 * `handle` throws retries it until an operator skips it; a failing store is
 * retried and never blamed on the event.
 */
const quiet = { log: () => undefined, warn: () => undefined, error: () => undefined };

/** `npm run projections` on the test's folder: the built CLI, as operators run it. */
function cli(dataDir: string, ...args: string[]) {
  return run(process.execPath, [join(ROOT, 'dist', 'src', 'cli', 'projections.js'), ...args], {
    PATH: process.env.PATH,
    DATA_DIR: dataDir,
    MFA_JWT_SECRET: TEST_JWT_SECRET,
    MFA_MASTER_KEY: TEST_MASTER_KEY,
  });
}

/** Waits for a decision another part makes on its own schedule (a watch, a back-off). */
async function until(condition: () => Promise<boolean> | boolean): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error('condition not met within 10 s');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('Bad events in the projection engine', () => {
  let dir: string;
  let file: string;
  let log: SqliteEventStore;
  let writer: LogWriter;
  let store: SqliteReadModelStore;
  let engine: ProjectionEngine | undefined;

  beforeAll(() => requireBuild());
  beforeEach(() => {
    dir = tempDir('mfa-bad-events-');
    file = join(dir, 'events.sqlite');
    log = new SqliteEventStore(file);
    writer = new LogWriter(log);
    store = new SqliteReadModelStore(join(dir, 'readmodels.sqlite'));
  });
  afterEach(async () => {
    await engine?.stop();
    engine = undefined;
    await store.close();
    await log.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const counted = (data: Record<string, string | boolean> = {}) =>
    writer.append('tally-acme', 'acme', ['Counted', data]).then(BigInt);

  /** A row as a damaged disk could leave it; answers its position. */
  function corruptRow(type = 'Counted', data = '{"n": '): bigint {
    const db = new Database(file);
    try {
      const revision = db
        .prepare('SELECT coalesce(max(revision), -1) + 1 FROM events WHERE stream_id = ?')
        .pluck()
        .get('tally-acme') as number;
      const metadata = JSON.stringify(newEvent('acme', type, {}).metadata);
      return BigInt(
        db
          .prepare(
            'INSERT INTO events (event_id, stream_id, revision, type, data, metadata) VALUES (?, ?, ?, ?, ?, ?)',
          )
          .run(`raw-${revision}`, 'tally-acme', revision, type, data, metadata).lastInsertRowid,
      );
    } finally {
      db.close();
    }
  }

  function mend(position: bigint): void {
    const db = new Database(file);
    db.prepare('UPDATE events SET data = ? WHERE position = ?').run('{}', position);
    db.close();
  }

  /** Records what it handled; fails on `stuck` events for as long as `failing` says. */
  function recorder() {
    const manager = {
      name: 'recorder',
      handles: ['Counted'],
      handled: [] as bigint[],
      failures: 0,
      failing: true,
      handle(event: RecordedEvent) {
        if (event.data.stuck === true && manager.failing) {
          manager.failures++;
          return Promise.reject(new Error('the mail server does not answer'));
        }
        manager.handled.push(event.position);
        return Promise.resolve();
      },
    };
    return manager satisfies ProcessManager;
  }

  const health = () => engine!.health(0n);
  const managerHealth = () => health().processManagers.find((m) => m.name === 'recorder')!;

  it('a process manager quarantines an event it cannot read, and retries a throwing handle until an operator skips it', async () => {
    const manager = recorder();
    const first = await counted();
    const unreadable = corruptRow();
    const stuck = await counted({ stuck: true });
    await writer.append('tally-acme', 'acme', ['CountedTwice', { n: 2 }]);
    const after = await counted();
    const head = await log.headPosition();
    engine = new ProjectionEngine(log, store, {
      projections: [],
      processManagers: [manager],
      logger: quiet,
      watchIntervalMs: 20,
    });
    await engine.start();

    // Stuck on its event, and on record for the CLI; the unreadable one is quarantined.
    await until(async () => (await store.processFailures()).length === 1);
    expect(await store.processFailures()).toEqual([
      expect.objectContaining({
        name: 'recorder',
        position: stuck,
        eventType: 'Counted',
        streamId: 'tally-acme',
        error: 'the mail server does not answer',
      }),
    ]);
    expect(managerHealth()).toMatchObject({
      status: 'retrying',
      position: String(unreadable),
      quarantined: 1,
      quarantinedEvents: [
        { position: String(unreadable), eventType: 'Counted', reason: 'data is not valid JSON' },
      ],
    });
    expect(health().healthy).toBe(false);
    expect(await engine.waitFor(head, ['recorder'], 300)).toBe(false);
    const status = await cli(dir, 'status');
    expect(status.stdout).toMatch(
      new RegExp(
        `^recorder\\s+process manager\\s+position \\d+\\s+quarantined 1\\s+skipped 0\\n` +
          `\\s+quarantined\\s+${unreadable}\\s+Counted\\s+tally-acme\\s+data is not valid JSON.*\\n` +
          `\\s+FAILING\\s+${stuck}\\s+Counted\\s+tally-acme\\s+the mail server does not answer`,
        'm',
      ),
    );

    // Only the event it is stuck on (or a quarantined one) can be skipped.
    const refused = await cli(dir, 'skip', 'recorder', String(after));
    expect(refused.code).toBe(2);
    const skipped = await cli(dir, 'skip', 'recorder', String(stuck), 'the recipient left');
    expect(skipped).toMatchObject({ code: 0, stderr: '' });
    expect(skipped.stdout).toMatch(/lets the process manager go on/);
    expect(await engine.waitFor(head, ['recorder'], 10_000)).toBe(true);
    expect(manager.handled).toEqual([first, after]);
    expect(manager.failures).toBeGreaterThanOrEqual(1);
    expect(await store.processFailures()).toEqual([]);
    expect(await store.processCheckpoint('recorder')).toBe(head);
    expect(managerHealth()).toMatchObject({ attempts: 0, quarantined: 1, skipped: 1 });
    expect(managerHealth()).not.toHaveProperty('lastError');
  });

  it('a process manager handles a quarantined or skipped event again when an operator replays it', async () => {
    const manager = recorder();
    const unreadable = corruptRow();
    const stuck = await counted({ stuck: true });
    const head = await log.headPosition();
    await store.recordSkip('recorder', stuck, 'mail server gone');
    engine = new ProjectionEngine(log, store, {
      projections: [],
      processManagers: [manager],
      logger: quiet,
      watchIntervalMs: 20,
    });
    await engine.start();
    expect(await engine.waitFor(head, ['recorder'], 10_000)).toBe(true);
    expect(manager.handled).toEqual([]);

    // Still unreadable: it stays quarantined, and the request is done with.
    await store.requestReplay('recorder', unreadable);
    await until(async () => (await store.replayRequests()).length === 0);
    expect(await store.quarantined('recorder')).toEqual([
      expect.objectContaining({ position: unreadable, reason: 'data is not valid JSON' }),
    ]);

    mend(unreadable);
    await store.requestReplay('recorder', unreadable);
    await until(() => managerHealth().quarantined === 0);
    expect(manager.handled).toEqual([unreadable]);
    expect(await store.replayRequests()).toEqual([]);

    // A skipped event (the CLI takes the skip back first) once the fault is gone.
    manager.failing = false;
    await store.removeSkip('recorder', stuck);
    await store.requestReplay('recorder', stuck);
    await until(async () => (await store.replayRequests()).length === 0);
    expect(manager.handled).toEqual([unreadable, stuck]);
    expect(managerHealth()).toMatchObject({ quarantined: 0, skipped: 0 });
  });

  it('a projection quarantines an event it cannot read or evolve, keeps none of its changes and goes on; a failing store is retried, not quarantined', async () => {
    const tally: Projection = {
      name: 'tally',
      version: 1,
      collections: [{ name: 'totals', fields: [], indexes: [] }],
      handles: ['Counted'],
      evolve(event, documents) {
        const firmId = event.metadata.firmId;
        const total = documents.get<{ n: number }>('totals', firmId) ?? { n: 0 };
        if (event.data.boom === true) throw new Error('Counted.boom is not a count');
        return [put('totals', firmId, { n: total.n + 1 })];
      },
    };
    let storeFailures = 2;
    const get = store.get.bind(store);
    store.get = (...args) =>
      storeFailures-- > 0 ? Promise.reject(new Error('disk I/O error')) : get(...args);
    await counted();
    const boom = await counted({ boom: true });
    await writer.append('other-acme', 'acme', ['SomethingNew', { n: 1 }]);
    const unreadable = corruptRow('Counted', '[1]');
    const head = await counted();
    engine = new ProjectionEngine(log, store, { projections: [tally], logger: quiet });
    await engine.start();
    expect(await engine.waitFor(head, ['tally'], 10_000)).toBe(true);

    expect(storeFailures).toBeLessThan(0);
    const target = {
      projection: 'tally',
      generation: (await store.activeGenerations()).get('tally')!,
    };
    // Two events counted: the one that threw left nothing behind.
    expect(await store.get(target, 'totals', 'acme')).toEqual({ n: 2 });
    expect(
      (await store.quarantined('tally')).map((q) => [q.position, q.generation, q.reason]),
    ).toEqual([
      [boom, target.generation, 'Counted.boom is not a count'],
      [unreadable, target.generation, 'data is not a JSON object (array)'],
    ]);
    expect((await store.checkpoint(target))?.position).toBe(head);
    expect(health().projections[0]).toMatchObject({ status: 'live', quarantined: 2 });
  });
});
