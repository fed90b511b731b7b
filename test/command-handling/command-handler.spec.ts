import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { CommandEnvelope, CommandHandler } from '../../src/command-handling/command-handler';
import { SqliteEventStore } from '../../src/event-store/sqlite-event-store';
import { EventStore, RecordedEvent, StreamAppend } from '../../src/event-store/event-store.port';
import { Decider } from '../../src/shared/decider';
import { DomainError } from '../../src/shared/domain-error';
import { event as newEvent } from '../event-store/event-store.contract';
import { tempDir, TestClock } from '../support/harness';

/** A counter: `Add` appends one `Added` event; the state is the sum. */
type Added = { type: 'Added'; data: { amount: number; total: number } };
const counter: Decider<{ amount: number }, Added, number> = {
  eventTypes: ['Added'],
  initialState: () => 0,
  decide: (command, total) => [
    { type: 'Added', data: { amount: command.amount, total: total + command.amount } },
  ],
  evolve: (total, event) => total + event.data.amount,
};
/** The same, but each event carries the total: the last event is the state. */
const snapshotting: typeof counter = {
  ...counter,
  evolve: (_total, event) => event.data.total,
  stateIsInLastEvent: true,
};

const envelope = (commandId: string): CommandEnvelope => ({
  commandId,
  firmId: 'acme',
  actor: { id: 'test', role: 'system' },
  correlationId: commandId,
});

describe('CommandHandler', () => {
  const dir = tempDir('mfa-handler-');
  const store = new SqliteEventStore(join(dir, 'events.sqlite'));
  const clock = new TestClock();
  afterAll(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a command retried after the stream moved on appends nothing and answers its first outcome', async () => {
    // DESIGN §6: the retry of a reset must not wipe the factor enrolled in between.
    const handler = new CommandHandler(store, clock);
    const first = await handler.handle('retried', counter, { amount: 1 }, envelope('cmd-1'));
    await handler.handle('retried', counter, { amount: 10 }, envelope('cmd-2'));
    // Another process (no cache) receives the retry.
    const retry = await new CommandHandler(store, clock).handle(
      'retried',
      counter,
      { amount: 1 },
      envelope('cmd-1'),
    );
    expect(retry.alreadyApplied).toBe(true);
    expect(retry.position).toBe(first.position);
    expect(retry.events).toEqual(first.events);
    expect(retry.state).toBe(11);
    const events = await store.readStream('retried');
    expect(events.map((e) => e.metadata.commandId)).toEqual(['cmd-1', 'cmd-2']);
  });

  it('the same command run at once by two handlers is appended once', async () => {
    const handlers = [new CommandHandler(store, clock), new CommandHandler(store, clock)];
    const outcomes = await Promise.all(
      Array.from({ length: 6 }, (_, i) =>
        handlers[i % 2].handle('same-command', counter, { amount: 5 }, envelope('only-once')),
      ),
    );
    const events = await store.readStream('same-command');
    expect(events).toHaveLength(1);
    expect(new Set(outcomes.map((outcome) => String(outcome.position)))).toEqual(
      new Set([String(events[0].position)]),
    );
  });

  /**
   * The store with a hook run before each append is handed to it (`call` counts
   * from 0): what another process does between a decision and its append.
   * `unflagged`: its answers never say `alreadyStored`, as KurrentDB's.
   */
  function hooked(before: (call: number) => Promise<void>, unflagged = false): EventStore {
    let calls = 0;
    const appendToStreams = async (appends: readonly StreamAppend[]) => {
      await before(calls++);
      const results = await store.appendToStreams(appends);
      return unflagged ? results.map(({ alreadyStored: _, ...result }) => result) : results;
    };
    return new Proxy(store, {
      get: (target, property) => {
        if (property === 'appendToStreams') return appendToStreams;
        const value = target[property as keyof EventStore] as unknown;
        return typeof value === 'function' ? (value as () => unknown).bind(target) : value;
      },
    });
  }

  describe.each([
    ['says', false],
    ['cannot tell', true],
  ])('when the store %s that a write was retried', (_says, unflagged) => {
    const tag = unflagged ? 'unflagged' : 'flagged';
    it('a retried write answered with the events another writer stored caches no state it never committed', async () => {
      // The store answers the first write's result for event ids it already holds, whatever
      // revision the retry was decided at: the stored events were folded from another base.
      const other = new CommandHandler(store, clock);
      const handler = new CommandHandler(
        hooked(async (call) => {
          if (call === 1) {
            await other.handle(`lost-${tag}`, counter, { amount: 10 }, envelope(`${tag}-lost-y`));
            await other.handle(`lost-${tag}`, counter, { amount: 5 }, envelope(`${tag}-lost-x`));
          }
        }, unflagged),
        clock,
      );
      await handler.handle(`lost-${tag}`, counter, { amount: 1 }, envelope(`${tag}-lost-w`));
      const retried = await handler.handle(
        `lost-${tag}`,
        counter,
        { amount: 5 },
        envelope(`${tag}-lost-x`),
      );
      await handler.handle(`lost-${tag}`, counter, { amount: 1 }, envelope(`${tag}-lost-z`));
      const stored = await store.readStream(`lost-${tag}`);
      expect(stored.map((e) => e.data.total)).toEqual([1, 11, 16, 17]);
      // Answered as what it is: the stored run, on the stored state.
      expect(retried.alreadyApplied).toBe(true);
      expect(retried.state).toBe(16);
      expect(retried.events).toEqual([{ type: 'Added', data: { amount: 5, total: 16 } }]);
      expect(retried.position).toBe(stored[2].position);
    });

    it('a retried write whose stored events differ from its own decision answers the stored ones', async () => {
      // Two processes run one command from the same base, each deciding its own random secret:
      // the one whose append is answered with the other's events must answer the stored secret.
      type Sealed = { type: 'Sealed'; data: { secret: string } };
      const sealing: Decider<{ secret: string }, Sealed, string | null> = {
        eventTypes: ['Sealed'],
        initialState: () => null,
        decide: (command) => [{ type: 'Sealed', data: { secret: command.secret } }],
        evolve: (_state, event) => event.data.secret,
      };
      const other = new CommandHandler(store, clock);
      const handler = new CommandHandler(
        hooked(async () => {
          await other.handle(
            `sealed-${tag}`,
            sealing,
            { secret: 'stored' },
            envelope(`${tag}-seal-1`),
          );
        }, unflagged),
        clock,
      );
      const outcome = await handler.handle(
        `sealed-${tag}`,
        sealing,
        { secret: 'mine' },
        envelope(`${tag}-seal-1`),
      );
      expect(outcome.alreadyApplied).toBe(true);
      expect(outcome.events).toEqual([{ type: 'Sealed', data: { secret: 'stored' } }]);
      expect(outcome.state).toBe('stored');
      expect((await handler.load(`sealed-${tag}`, sealing)).state).toBe('stored');
    });
  });

  it('a run of the same command that stored other events first is answered on the stream as it is now', async () => {
    // The store refuses ids reused in another batch (DuplicateEventIdError): the other run
    // decided one event, this one two. Its answer must not be this run's stale state.
    const batches: typeof counter = {
      ...counter,
      decide: (command, total) =>
        Array.from({ length: command.amount }, (_, index) => ({
          type: 'Added' as const,
          data: { amount: 1, total: total + index + 1 },
        })),
    };
    const other = new CommandHandler(store, clock);
    const handler = new CommandHandler(
      hooked(async () => {
        await other.handle('duplicate', batches, { amount: 1 }, envelope('dup-1'));
      }),
      clock,
    );
    const outcome = await handler.handle('duplicate', batches, { amount: 2 }, envelope('dup-1'));
    expect(outcome.alreadyApplied).toBe(true);
    expect(outcome.events).toEqual([{ type: 'Added', data: { amount: 1, total: 1 } }]);
    expect(outcome.state).toBe(1);
    expect((await store.readStream('duplicate')).map((e) => e.data.total)).toEqual([1]);
  });

  it('a fresh command id is not looked up: nothing can carry it yet', async () => {
    const handler = new CommandHandler(store, clock);
    const spy = jest.spyOn(store, 'readCommand');
    await handler.handle(
      'fresh',
      counter,
      { amount: 1 },
      { ...envelope('f-1'), freshCommandId: true },
    );
    expect(spy).not.toHaveBeenCalled();
    await handler.handle('fresh', counter, { amount: 1 }, envelope('f-2'));
    expect(spy).toHaveBeenCalledWith('fresh', 'f-2');
    spy.mockRestore();
  });

  it('a fold passes over event types this version does not know, and counts them', async () => {
    await store.appendToStream(
      'with-unknown',
      [newEvent('AddedByANewerVersion', { amount: 1000 })],
      'no_stream',
    );
    const handler = new CommandHandler(store, clock);
    const outcome = await handler.handle('with-unknown', counter, { amount: 2 }, envelope('u-1'));
    expect(outcome.state).toBe(2);
    expect(handler.unknownEventTypes.get('AddedByANewerVersion')).toBe(1);
    // A stream whose last event is the state keeps the last one it knows.
    await handler.handle('snap-unknown', snapshotting, { amount: 3 }, envelope('u-2'));
    await store.appendToStream('snap-unknown', [newEvent('Later', { total: 0 })], 0n);
    expect((await handler.load('snap-unknown', snapshotting)).state).toBe(3);
  });

  it('refuses to decide on a stream holding an event it cannot read (503), and appends nothing', async () => {
    await store.appendToStream(
      'corrupt',
      [newEvent('Added', { amount: 1, total: 1 })],
      'no_stream',
    );
    const reading: EventStore = Object.create(store) as EventStore;
    reading.readStream = async (...args) =>
      (await store.readStream(...args)).map((e): RecordedEvent => ({
        ...e,
        data: {},
        corrupt: 'data is not JSON',
      }));
    const handler = new CommandHandler(reading, clock);
    await expect(
      handler.handle('corrupt', counter, { amount: 1 }, envelope('c-1')),
    ).rejects.toMatchObject({ code: 'stream-unreadable', kind: 'unavailable' });
    expect(await store.readStream('corrupt')).toHaveLength(1);
  });

  describe('commands over several streams', () => {
    const both = (suffix: string) => ({
      a: { streamId: `multi-a-${suffix}`, decider: counter },
      b: { streamId: `multi-b-${suffix}`, decider: counter },
    });

    it('append to every stream at once, or to none when the decision refuses', async () => {
      const handler = new CommandHandler(store, clock);
      const outcome = await handler.handleAcross(
        both('1'),
        (states) => ({
          a: counter.decide({ amount: 1 }, states.a, { now: '' }),
          b: counter.decide({ amount: 2 }, states.b, { now: '' }),
        }),
        envelope('m-1'),
      );
      expect(outcome.states).toEqual({ a: 1, b: 2 });
      await expect(
        handler.handleAcross(
          both('1'),
          () => {
            throw new DomainError('refused', 'no');
          },
          envelope('m-2'),
        ),
      ).rejects.toMatchObject({ code: 'refused' });
      expect(await store.readStream('multi-a-1')).toHaveLength(1);
      expect(await store.readStream('multi-b-1')).toHaveLength(1);
    });

    it('decide again when a stream they only relied on moved before the append', async () => {
      const handler = new CommandHandler(store, clock);
      const other = new CommandHandler(store, clock);
      await handler.handle('multi-b-2', counter, { amount: 1 }, envelope('seed'));
      const seen: number[] = [];
      let moved = false;
      await handler.handleAcross(
        both('2'),
        (states) => {
          seen.push(states.b);
          return { a: counter.decide({ amount: states.b }, states.a, { now: '' }) };
        },
        envelope('m-3'),
        async (now) => {
          // Between this decision's reads and its append, another process moves stream b.
          if (!moved) {
            moved = true;
            await other.handle('multi-b-2', counter, { amount: 100 }, envelope('mover'));
          }
          return { now };
        },
      );
      expect(seen).toEqual([1, 101]);
      expect((await store.readStream('multi-a-2')).map((e) => e.data.amount)).toEqual([101]);
    });
  });

  it('a handler with a cached state sees what another process appended since', async () => {
    const mine = new CommandHandler(store, clock);
    const theirs = new CommandHandler(store, clock);
    await mine.handle('shared', counter, { amount: 1 }, envelope('a'));
    expect((await mine.load('shared', counter)).state).toBe(1);
    await theirs.handle('shared', counter, { amount: 10 }, envelope('b'));
    await theirs.handle('shared', counter, { amount: 100 }, envelope('c'));
    const loaded = await mine.load('shared', counter);
    expect(loaded.state).toBe(111);
    expect(loaded.expectedRevision).toBe(2n);
    // Its next command is decided on that state and appended after it.
    const outcome = await mine.handle('shared', counter, { amount: 1000 }, envelope('d'));
    expect(outcome.state).toBe(1111);
    expect((await store.readStream('shared')).map((e) => e.data.total)).toEqual([1, 11, 111, 1111]);
  });

  it('another process appending on the same file is seen by a cached state, and an untouched one is not read', async () => {
    const mine = new CommandHandler(store, clock);
    const otherProcess = new SqliteEventStore(join(dir, 'events.sqlite'));
    try {
      const theirs = new CommandHandler(otherProcess, clock);
      await mine.handle('foreign', counter, { amount: 1 }, envelope('f-1'));
      await mine.handle('untouched', counter, { amount: 5 }, envelope('f-2'));
      await new Promise((resolve) => setImmediate(resolve));
      const reads = jest.spyOn(store, 'readStream');
      expect((await mine.load('untouched', counter)).state).toBe(5);
      expect(reads).not.toHaveBeenCalled();
      await theirs.handle('foreign', counter, { amount: 10 }, envelope('f-3'));
      await new Promise((resolve) => setImmediate(resolve));
      const loaded = await mine.load('foreign', counter);
      expect(loaded.state).toBe(11);
      expect(loaded.expectedRevision).toBe(1n);
      expect(reads).toHaveBeenCalledTimes(1);
      reads.mockRestore();
      // Its next command is decided on that state, and the other's next on its own.
      await mine.handle('foreign', counter, { amount: 100 }, envelope('f-4'));
      await new Promise((resolve) => setImmediate(resolve));
      expect(
        (await theirs.handle('foreign', counter, { amount: 1000 }, envelope('f-5'))).state,
      ).toBe(1111);
      expect((await store.readStream('foreign')).map((e) => e.data.total)).toEqual([
        1, 11, 111, 1111,
      ]);
    } finally {
      await otherProcess.close();
    }
  });

  it('a stream whose events carry the state is decided on its last event alone', async () => {
    const handler = new CommandHandler(store, clock);
    for (let i = 0; i < 5; i++) {
      await handler.handle('snapshots', snapshotting, { amount: 2 }, envelope(`s-${i}`));
    }
    const spy = jest.spyOn(store, 'readStream');
    const loaded = await handler.load('snapshots', snapshotting);
    expect(loaded.state).toBe(10);
    expect(spy).toHaveBeenCalledWith('snapshots', { direction: 'backwards', maxCount: 1 });
    spy.mockRestore();
  });

  it('concurrent commands on one stream from two handlers are all applied once', async () => {
    const handlers = [new CommandHandler(store, clock), new CommandHandler(store, clock)];
    await Promise.all(
      Array.from({ length: 30 }, (_, i) =>
        handlers[i % 2].handle('race', counter, { amount: 1 }, envelope(`race-${i}`)),
      ),
    );
    const events = await store.readStream('race');
    expect(events.map((e) => e.data.total)).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
  });
});
