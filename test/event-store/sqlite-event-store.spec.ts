import { rmSync } from 'node:fs';
import { join } from 'node:path';
import {
  DuplicateEventIdError,
  WrongExpectedRevisionError,
} from '../../src/event-store/event-store.port';
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
});
