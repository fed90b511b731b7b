import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ALL_PROJECTIONS } from '../../projections';
import { enrolledUsersProjection } from '../../projections/enrolled-users.projection';
import type { Projection } from '../../src/projection-engine/projection';
import { SqliteEventStore } from '../../src/event-store/sqlite-event-store';
import { ProjectionEngine } from '../../src/projection-engine/projection-engine';
import { rebuildProjections, RebuildResult } from '../../src/projection-engine/rebuild';
import type { ReadModelStore } from '../../src/read-model/read-model-store.port';
import { SqliteReadModelStore } from '../../src/read-model/sqlite-read-model-store';
import { streams } from '../../src/shared/ids';
import { LogWriter } from '../support/log-events';

/*
 * The rebuild path (pages of chosen types, documents in memory, bounded, flushed
 * on a writer thread) must build exactly what the live path (one batch at a
 * time, through the unit of work) builds. Tiny bounds force every corner: many
 * flushes in flight, documents dropped from memory and read back, ids the
 * filter has to answer for.
 */
const quiet = { log: () => undefined, warn: () => undefined, error: () => undefined };

/** A small deterministic generator, so that a failure can be replayed. */
function random(seed: number) {
  let state = seed >>> 0;
  return (n: number) => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state % n;
  };
}

async function history(log: LogWriter, seed: number): Promise<void> {
  const pick = random(seed);
  const firms = ['acme', 'globex', 'initech'];
  const roles = ['case-manager', 'vendor-case-manager', 'corp-user', 'foreign-national'];
  for (const firm of firms) {
    await log.append(streams.subscription(firm), firm, [
      'SubscriptionRequested',
      { plan: 'p', requestedAt: '2026-01-15T09:00:00.000Z' },
    ]);
    await log.append(streams.subscription(firm), firm, [
      'SubscriptionActivated',
      { plan: 'p', licenseCount: 50, activatedAt: '2026-01-15T09:00:00.000Z' },
    ]);
  }
  const registered: Array<[string, string]> = [];
  for (let i = 0; i < 400; i++) {
    const firm = firms[pick(firms.length)];
    const step = pick(10);
    if (step < 4 || registered.length === 0) {
      const userId = `u${i}`;
      const role = roles[pick(roles.length)];
      await log.append(streams.user(firm, userId), firm, [
        'UserRegistered',
        {
          userId,
          role,
          corporationId: role.includes('-') && !role.includes('case') ? `c${pick(3)}` : null,
          name: `User ${pick(50)} ${['Ann', 'Bob', 'Zoë'][pick(3)]}`,
          email: `${userId}@example.com`,
          organization: pick(2) ? 'Acme Law' : null,
        },
      ]);
      registered.push([firm, userId]);
      continue;
    }
    const [userFirm, userId] = registered[pick(registered.length)];
    if (step < 7) {
      await log.confirmFactor(userFirm, userId, `f${i}`, pick(2) ? 'totp' : 'webauthn');
      await log.assignSeat(userFirm, userId);
    } else if (step === 7) {
      await log.resetEnrollment(userFirm, userId, []);
      await log.releaseSeat(userFirm, userId);
    } else if (step === 8) {
      await log.append(streams.user(userFirm, userId), userFirm, [
        pick(2) ? 'UserDeactivated' : 'UserReactivated',
        { userId, reason: 'test' },
      ]);
    } else {
      const corporationId = `c${pick(3)}`;
      await log.append(streams.corporation(userFirm, corporationId), userFirm, [
        'CorporationRegistered',
        { corporationId, name: `Corp ${pick(9)}`, registeredAt: '2026-01-15T09:00:00.000Z' },
      ]);
    }
  }
}

async function snapshot(store: ReadModelStore): Promise<string> {
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

describe('Rebuild from zero', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'mfa-rebuild-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it.each([
    ['defaults, on the writer thread', {}, true],
    [
      'tiny bounds, on the writer thread',
      { pageSize: 7, flushDocuments: 5, maxDocuments: 40 },
      true,
    ],
    ['tiny bounds, in the caller', { pageSize: 3, flushDocuments: 2, maxDocuments: 4 }, false],
  ])('with %s equals the live read models', async (_name, options, writerThread) => {
    const log = new SqliteEventStore(join(dir, 'events.sqlite'));
    await history(new LogWriter(log), 20_260_115);
    const head = await log.headPosition();

    const liveStore = new SqliteReadModelStore(join(dir, 'live.sqlite'));
    const engine = new ProjectionEngine(log, liveStore, {
      projections: ALL_PROJECTIONS,
      logger: quiet,
    });
    await engine.start();
    expect(await engine.waitFor(head, [], 10_000)).toBe(true);
    await engine.stop();
    const live = await snapshot(liveStore);
    await liveStore.close();
    expect(live.split('\n').length).toBeGreaterThan(300);

    const store = new SqliteReadModelStore(join(dir, 'rebuilt.sqlite'), { writerThread });
    let readBack = 0;
    const get = store.get.bind(store);
    store.get = (...args) => {
      readBack++;
      return get(...args);
    };
    const results = await rebuildProjections(log, store, ALL_PROJECTIONS, options);
    // Defaults hold everything; tiny bounds drop documents and read them back.
    if ('maxDocuments' in options) expect(readBack).toBeGreaterThan(50);
    else expect(readBack).toBe(0);
    expect(results.every((r) => r.position === head && r.activated)).toBe(true);
    expect(results.flatMap((r) => r.quarantined)).toEqual([]);
    expect(await snapshot(store)).toBe(live);
    await store.close();
    await log.close();
    // Loaded without its indexes, the generation has them all by the time it is served.
    const db = new Database(join(dir, 'rebuilt.sqlite'), { readonly: true });
    const indexes = db
      .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE 'rm_%'")
      .pluck()
      .all() as string[];
    db.close();
    const declared = ALL_PROJECTIONS.flatMap((p) => p.collections).flatMap((c) => c.indexes);
    expect(indexes).toHaveLength(declared.length);
  });

  it('quarantines what a projection cannot read or apply, as the live path does, and goes on', async () => {
    const file = join(dir, 'events.sqlite');
    const log = new SqliteEventStore(file);
    const writer = new LogWriter(log);
    await history(writer, 7);
    // A name that is not text: the enrolled-users list cannot be built from it.
    const poison = BigInt(
      await writer.append(streams.user('acme', 'u-bad'), 'acme', [
        'UserRegistered',
        { userId: 'u-bad', role: 'case-manager', corporationId: null, name: 42, email: 'x@x.io' },
      ]),
    );
    // And a row that is not JSON at all, as a damaged disk could leave it.
    const db = new Database(file);
    const corrupt = BigInt(
      db
        .prepare(
          'INSERT INTO events (event_id, stream_id, revision, type, data, metadata) VALUES (?, ?, ?, ?, ?, ?)',
        )
        .run('raw-1', streams.user('globex', 'u-x'), 0, 'UserRegistered', '{"userId":', '{}')
        .lastInsertRowid,
    );
    db.close();
    await writer.confirmFactor('acme', 'u-bad', 'f-bad', 'totp');
    const head = await log.headPosition();

    const store = new SqliteReadModelStore(join(dir, 'rebuilt.sqlite'), { writerThread: true });
    const results = await rebuildProjections(log, store, ALL_PROJECTIONS);
    const quarantinedBy = (result: RebuildResult) =>
      result.quarantined.map((q) => [q.position, q.eventType, q.streamId, q.reason]);
    for (const result of results) {
      expect(result).toMatchObject({ position: head, activated: true, regressions: [] });
      const projection = ALL_PROJECTIONS.find((p) => p.name === result.projection)!;
      const unreadable = [
        corrupt,
        'UserRegistered',
        streams.user('globex', 'u-x'),
        'data is not valid JSON',
      ];
      if (result.projection === 'enrolled-users') {
        expect(quarantinedBy(result)).toEqual([
          [
            poison,
            'UserRegistered',
            streams.user('acme', 'u-bad'),
            'UserRegistered.name is not a string',
          ],
          unreadable,
        ]);
      } else if (projection.handles.includes('UserRegistered')) {
        expect(quarantinedBy(result).slice(-1)).toEqual([unreadable]);
      } else {
        expect(quarantinedBy(result)).toEqual([]);
      }
    }
    // The same events quarantined, with the checkpoint, as the live path quarantines them.
    const stored = (await store.quarantined()).map(
      (q) => `${q.consumer} ${q.position} ${q.reason}`,
    );
    expect(stored).toEqual(
      results
        .flatMap((r) => r.quarantined.map((q) => `${q.consumer} ${q.position} ${q.reason}`))
        .sort(),
    );
    const liveStore = new SqliteReadModelStore(join(dir, 'live.sqlite'));
    const engine = new ProjectionEngine(log, liveStore, {
      projections: ALL_PROJECTIONS,
      logger: quiet,
    });
    await engine.start();
    expect(await engine.waitFor(head, [], 10_000)).toBe(true);
    await engine.stop();
    expect(await snapshot(store)).toBe(await snapshot(liveStore));
    expect(
      (await liveStore.quarantined()).map((q) => `${q.consumer} ${q.position} ${q.reason}`),
    ).toEqual(stored);
    await liveStore.close();

    // Skipped: the next rebuild passes the event without a quarantine.
    await store.recordSkip('enrolled-users', poison, 'bad name from host');
    const [skipped] = await rebuildProjections(log, store, [enrolledUsersProjection]);
    expect(quarantinedBy(skipped).map(([position]) => position)).toEqual([corrupt]);
    const active = await store.activeGenerations();
    expect(active.get('enrolled-users')).toBe(skipped.generation);
    const target = { projection: 'enrolled-users', generation: skipped.generation };
    // u-bad was never registered here, so its factor lists nobody.
    expect(await store.get(target, 'profiles', 'acme/u-bad')).toBeUndefined();
    expect(await store.get(target, 'entries', 'acme/u-bad')).toBeUndefined();

    // A rebuild that quarantines what the served generation applied is a fault of the
    // code, not of the events: it is not activated, and the served read model stays.
    const broken: Projection = {
      ...enrolledUsersProjection,
      evolve(event, documents) {
        if (event.type === 'FactorConfirmed') {
          throw new Error('FactorConfirmed.factorType is not known');
        }
        return enrolledUsersProjection.evolve(event, documents);
      },
    };
    const [held] = await rebuildProjections(log, store, [broken]);
    expect(held.activated).toBe(false);
    expect(held.regressions.length).toBeGreaterThan(0);
    expect(held.regressions.every((q) => q.eventType === 'FactorConfirmed')).toBe(true);
    expect((await store.activeGenerations()).get('enrolled-users')).toBe(skipped.generation);
    await store.close();
    await log.close();
  });
});
