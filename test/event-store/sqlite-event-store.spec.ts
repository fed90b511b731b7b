import Database from 'better-sqlite3';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import {
  DuplicateEventIdError,
  WrongExpectedRevisionError,
} from '../../src/event-store/event-store.port';
import type { RecordedEvent } from '../../src/event-store/event-store.port';
import { SqliteEventStore } from '../../src/event-store/sqlite-event-store';
import { tempDir } from '../support/harness';
import { event, eventStoreContract } from './event-store.contract';

eventStoreContract('SQLite (embedded)', async () => {
  const dir = tempDir('mfa-store-');
  const store = new SqliteEventStore(join(dir, 'events.sqlite'));
  return {
    store,
    dispose: async () => {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
});

describe('SQLite event store specifics', () => {
  let dir: string;
  beforeEach(() => (dir = tempDir('mfa-store-')));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('group-commits concurrent appends: one refused append does not refuse the others', async () => {
    const store = new SqliteEventStore(join(dir, 'events.sqlite'));
    await store.appendToStream('s-taken', [event('A')], 'no_stream');
    const results = await Promise.allSettled([
      store.appendToStream('s-one', [event('A')], 'no_stream'),
      store.appendToStream('s-taken', [event('B')], 'no_stream'),
      store.appendToStream('s-two', [event('A'), event('B')], 'no_stream'),
    ]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect((results[1] as PromiseRejectedResult).reason).toBeInstanceOf(WrongExpectedRevisionError);
    expect((await store.readAll({ after: 0n })).map((e) => `${e.streamId}:${e.type}`)).toEqual([
      's-taken:A',
      's-one:A',
      's-two:A',
      's-two:B',
    ]);
    await store.close();
  });

  it('refuses an event id reused in another stream or another batch', async () => {
    const store = new SqliteEventStore(join(dir, 'events.sqlite'));
    const reused = event('A');
    await store.appendToStream('s-1', [reused], 'no_stream');
    await expect(store.appendToStream('s-2', [reused], 'no_stream')).rejects.toBeInstanceOf(
      DuplicateEventIdError,
    );
    await expect(store.appendToStream('s-1', [reused, event('B')], 0n)).rejects.toBeInstanceOf(
      DuplicateEventIdError,
    );
    expect(await store.readAll({ after: 0n })).toHaveLength(1);
    await store.close();
  });

  it('keeps acknowledged appends across a reopen of the file', async () => {
    const file = join(dir, 'events.sqlite');
    const first = new SqliteEventStore(file);
    const { position } = await first.appendToStream(
      's-durable',
      [event('A'), event('B')],
      'no_stream',
    );
    await first.close();
    const second = new SqliteEventStore(file);
    expect(await second.headPosition()).toBe(position);
    expect((await second.readStream('s-durable')).map((e) => e.type)).toEqual(['A', 'B']);
    await second.close();
  });

  it('close() lands the appends still queued for the next group commit', async () => {
    const file = join(dir, 'events.sqlite');
    const store = new SqliteEventStore(file);
    const pending = store.appendToStream('s-queued', [event('A')], 'no_stream');
    await store.close();
    await expect(pending).resolves.toMatchObject({ nextExpectedRevision: 0n });
    const reopened = new SqliteEventStore(file);
    expect(await reopened.readStream('s-queued')).toHaveLength(1);
    await reopened.close();
  });

  /** Subscriptions from various positions and batch sizes, each recording what it was handed. */
  function follow(store: SqliteEventStore, starts: Array<[bigint, number]>) {
    const seen = starts.map(() => [] as bigint[]);
    const subscriptions = starts.map(([after, batchSize], i) =>
      store.subscribeToAll({
        after,
        batchSize,
        onEvents: (events) => {
          seen[i].push(...events.map((e) => e.position));
          return Promise.resolve();
        },
      }),
    );
    const reached = async (head: bigint) => {
      while (seen.some((positions, i) => (positions.at(-1) ?? starts[i][0]) < head)) {
        await new Promise((resolve) => setImmediate(resolve));
      }
    };
    return { seen, reached, stop: () => Promise.all(subscriptions.map((s) => s.stop())) };
  }

  it('hands every event once and in order to subscriptions following the log together while appends go on', async () => {
    const store = new SqliteEventStore(join(dir, 'events.sqlite'), { synchronous: 'NORMAL' });
    for (let i = 0; i < 40; i++)
      await store.appendToStream(`s-early-${i}`, [event('A')], 'no_stream');
    const starts: Array<[bigint, number]> = [
      [0n, 1000],
      [0n, 1000],
      [0n, 200],
      [0n, 7],
      [10n, 1000],
      [10n, 200],
      [40n, 1000],
      [40n, 3],
    ];
    const { seen, reached, stop } = follow(store, starts);
    // Appends of one to five events, some concurrent (one group commit), while they follow.
    for (let round = 0; round < 30; round++) {
      await Promise.all(
        Array.from({ length: 1 + (round % 3) }, (_, j) =>
          store.appendToStream(
            `s-${round}-${j}`,
            Array.from({ length: 1 + ((round + j) % 5) }, () => event('B')),
            'no_stream',
          ),
        ),
      );
      if (round % 4 === 0) await new Promise((resolve) => setImmediate(resolve));
    }
    const head = await store.headPosition();
    await reached(head);
    await stop();
    starts.forEach(([after], i) => {
      const expected = Array.from(
        { length: Number(head - after) },
        (_, k) => after + BigInt(k + 1),
      );
      expect(seen[i]).toEqual(expected);
    });
    await store.close();
  });

  it('reads the log once for the subscriptions at the same position that a commit wakes', async () => {
    const store = new SqliteEventStore(join(dir, 'events.sqlite'), { synchronous: 'NORMAL' });
    await store.appendToStream('s-first', [event('A')], 'no_stream');
    const starts = Array.from({ length: 8 }, (): [bigint, number] => [1n, 1000]);
    const { seen, reached, stop } = follow(store, starts);
    await reached(1n);
    // Reads that found events, counted from here on.
    const found: number[] = [];
    const internals = store as unknown as {
      readAllNow(after: bigint, max: number): RecordedEvent[];
    };
    const readAllNow = internals.readAllNow.bind(store);
    const spy = jest.spyOn(internals, 'readAllNow').mockImplementation((after, max) => {
      const events = readAllNow(after, max);
      if (events.length > 0) found.push(events.length);
      return events;
    });
    await store.appendToStream('s-second', [event('B'), event('C')], 'no_stream');
    await reached(3n);
    spy.mockRestore();
    await stop();
    expect(seen).toEqual(starts.map(() => [2n, 3n]));
    expect(found).toEqual([2]);
    await store.close();
  });

  it('wakes a subscription on a commit made through another connection', async () => {
    const file = join(dir, 'events.sqlite');
    const reader = new SqliteEventStore(file);
    const writer = new SqliteEventStore(file);
    let caughtUp!: () => void;
    const ready = new Promise<void>((resolve) => (caughtUp = resolve));
    const received = new Promise<string>((resolve) => {
      reader.subscribeToAll({
        after: 0n,
        onCaughtUp: () => caughtUp(),
        onEvents: async (events) => resolve(events[0].type),
      });
    });
    await ready;
    await writer.appendToStream('s-foreign', [event('FromElsewhere')], 'no_stream');
    expect(await received).toBe('FromElsewhere');
    await writer.close();
    await reader.close();
  });

  it('reads a row whose data or metadata is not a JSON object as a corrupt event, on every read path, and never throws', async () => {
    const file = join(dir, 'events.sqlite');
    const store = new SqliteEventStore(file);
    const good = event('Good', { n: 1 });
    await store.appendToStream('s-bad', [good], 'no_stream');
    // Rows as a damaged disk, a bad restore or a hand edit could leave them.
    const metadata = JSON.stringify(event('Bad').metadata);
    const rows: Array<[string, string, string]> = [
      ['BadData', '{"userId": "u-1", "name": ', metadata],
      ['BadData', '[1, 2]', metadata],
      ['BadData', 'null', metadata],
      ['BadMetadata', '{"n": 2}', 'not json'],
      ['BadBoth', '"text"', '42'],
    ];
    const db = new Database(file);
    rows.forEach(([type, data, meta], i) =>
      db
        .prepare(
          'INSERT INTO events (event_id, stream_id, revision, type, data, metadata) VALUES (?, ?, ?, ?, ?, ?)',
        )
        .run(`raw-${i}`, 's-bad', i + 1, type, data, meta),
    );
    db.close();
    await store.appendToStream('s-after', [event('After')], 'no_stream');

    const expected = [
      // Its metadata as given, and the hash chain's fields the store adds (ADR 0017).
      { type: 'Good', data: good.data, metadata: expect.objectContaining(good.metadata) },
      { type: 'BadData', data: {}, corrupt: 'data is not valid JSON' },
      { type: 'BadData', data: {}, corrupt: 'data is not a JSON object (array)' },
      { type: 'BadData', data: {}, corrupt: 'data is not a JSON object (null)' },
      { type: 'BadMetadata', data: {}, metadata: {}, corrupt: 'metadata is not valid JSON' },
      {
        type: 'BadBoth',
        data: {},
        metadata: {},
        corrupt: 'data is not a JSON object (string); metadata is not a JSON object (number)',
      },
    ];
    const all = await store.readAll({ after: 0n });
    expect(all.slice(0, 6)).toEqual(expected.map((e) => expect.objectContaining(e)));
    expect(all[0]).not.toHaveProperty('corrupt');
    // Metadata that could be read is kept beside unreadable data.
    expect(all[1].metadata).toEqual(JSON.parse(metadata));
    expect(all.map((e) => e.type).slice(6)).toEqual(['After']);
    expect(await store.readStream('s-bad')).toEqual(all.slice(0, 6));
    expect(await store.readStream('s-bad', { direction: 'backwards' })).toEqual(
      all.slice(0, 6).reverse(),
    );
    const page = await store.readPage({ after: 0n, maxCount: 100, types: ['BadData', 'After'] });
    expect(page.events).toEqual([all[1], all[2], all[3], all[6]]);
    expect((await store.readPage({ after: 0n, maxCount: 100 })).events).toEqual(all);

    // A subscription reads past them to the head.
    const seen: string[] = [];
    await new Promise<void>((resolve, reject) => {
      const subscription = store.subscribeToAll({
        after: 0n,
        onEvents: (events) => {
          seen.push(...events.map((e) => e.corrupt ?? e.type));
          return Promise.resolve();
        },
        onCaughtUp: () => void subscription.stop().then(resolve),
        onError: reject,
      });
    });
    expect(seen).toEqual(['Good', ...expected.slice(1).map((e) => e.corrupt), 'After']);
    await store.close();
  });

  it("reads a firm's unreadable rows as corrupt events of the firm, and only those naming no other firm", async () => {
    const file = join(dir, 'events.sqlite');
    const store = new SqliteEventStore(file);
    const mine = { ...event('UserRegistered', { userId: 'ann' }) };
    mine.metadata = { ...mine.metadata, firmId: 'acme' };
    await store.appendToStream('user-acme/ann', [mine], 'no_stream');
    const theirs = JSON.stringify({ ...event('X').metadata, firmId: 'acme-2' });
    const db = new Database(file);
    const insert = db.prepare(
      'INSERT INTO events (event_id, stream_id, revision, type, data, metadata) VALUES (?, ?, ?, ?, ?, ?)',
    );
    insert.run('raw-1', 'user-acme/ann', 1, 'FactorConfirmed', '{"userId": ', '{"firmId": "acme"}');
    insert.run('raw-2', 'user-acme/ann', 2, 'EnrollmentReset', '{}', 'not json');
    insert.run('raw-3', 'user-acme/ann', 3, 'UserDeactivated', '{}', theirs);
    insert.run('raw-4', 'user-acme-2/bob', 0, 'UserRegistered', 'nope', 'nope');
    db.close();

    const page = await store.readFirm('acme', { after: 0n, maxCount: 10 });
    expect(page.events.map((e) => [e.revision, e.type, e.corrupt])).toEqual([
      [0n, 'UserRegistered', undefined],
      [1n, 'FactorConfirmed', 'data is not valid JSON'],
      [2n, 'EnrollmentReset', 'metadata is not valid JSON'],
    ]);
    expect(page.through).toBe(4n);
    const other = await store.readFirm('acme-2', { after: 0n, maxCount: 10 });
    expect(other.events.map((e) => [e.streamId, e.corrupt])).toEqual([
      ['user-acme-2/bob', 'data is not valid JSON; metadata is not valid JSON'],
    ]);
    await store.close();
  });

  it('indexes the firms of a log written before readFirm existed when it is opened', async () => {
    const file = join(dir, 'events.sqlite');
    const first = new SqliteEventStore(file);
    const e = event('UserRegistered');
    e.metadata = { ...e.metadata, firmId: 'acme' };
    await first.appendToStream('user-acme/ann', [e], 'no_stream');
    await first.close();
    const db = new Database(file);
    db.exec('DROP INDEX events_by_firm');
    db.close();
    const reopened = new SqliteEventStore(file);
    expect((await reopened.readFirm('acme', { after: 0n, maxCount: 10 })).events).toHaveLength(1);
    await reopened.close();
  });
});
