import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { CommandEnvelope, CommandHandler } from '../../src/command-handling/command-handler';
import { SqliteEventStore } from '../../src/event-store/sqlite-event-store';
import { Decider } from '../../src/shared/decider';
import { tempDir, TestClock } from '../support/harness';

/** A counter: `Add` appends one `Added` event; the state is the sum. */
type Added = { type: 'Added'; data: { amount: number; total: number } };
const counter: Decider<{ amount: number }, Added, number> = {
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

  it('two appends of one command to one stream both land, with distinct event ids', async () => {
    const handler = new CommandHandler(store, clock);
    await handler.handle('two-steps', counter, { amount: 1 }, envelope('cmd-1'));
    const second = await handler.handle('two-steps', counter, { amount: 2 }, envelope('cmd-1'));
    expect(second.state).toBe(3);
    const events = await store.readStream('two-steps');
    expect(events.map((e) => e.data.amount)).toEqual([1, 2]);
    expect(new Set(events.map((e) => e.metadata.eventId)).size).toBe(2);
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
