import Database from 'better-sqlite3';
import { randomUUID } from 'node:crypto';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { ChainingEventStore } from '../../src/event-store/chaining-event-store';
import {
  EventStore,
  ExpectedRevision,
  NewEvent,
  RecordedEvent,
  WrongExpectedRevisionError,
} from '../../src/event-store/event-store.port';
import { KurrentDbEventStore } from '../../src/event-store/kurrentdb-event-store';
import { SqliteEventStore } from '../../src/event-store/sqlite-event-store';
import { chainLinkOf, eventHash } from '../../src/shared/event-hash';
import { tempDir } from '../support/harness';
import { event, eventStoreContract } from '../event-store/event-store.contract';

/*
 * ADR 0017: every event the service appends carries `metadata.hash` and
 * `metadata.previousHash`, computed before the append against the exact
 * predecessor the expected revision guarantees. The decorator must keep every
 * promise of the event-store port (the contract suite, run through it), and
 * add unforked chains, whatever retries and races happen.
 */

/** The adapters the chains run on here: SQLite always, KurrentDB when EVENTSTORE_URL names one. */
const url = process.env.EVENTSTORE_URL;
interface Opened {
  adapter: EventStore;
  dispose(): Promise<void>;
}
const adapters: Array<[string, () => Opened]> = [
  [
    'SQLite',
    () => {
      const dir = tempDir('mfa-chain-');
      const adapter = new SqliteEventStore(join(dir, 'events.sqlite'));
      return {
        adapter,
        dispose: async () => {
          await adapter.close();
          rmSync(dir, { recursive: true, force: true });
        },
      };
    },
  ],
];
if (url) {
  adapters.push([
    `KurrentDB at ${url}`,
    () => {
      const adapter = new KurrentDbEventStore(url);
      return { adapter, dispose: () => adapter.close() };
    },
  ]);
} else {
  console.warn(
    'Hash chains on KurrentDB SKIPPED: EVENTSTORE_URL is not set (no KurrentDB server on this machine).',
  );
  describe.skip('Hash chains on KurrentDB (skipped: EVENTSTORE_URL is not set)', () => {
    it('run the contract and the chain specs against a KurrentDB server', () => undefined);
  });
}

for (const [name, open] of adapters) {
  eventStoreContract(`${name} behind the hash chains`, () => {
    const opened = open();
    const store = new ChainingEventStore(opened.adapter);
    return Promise.resolve({ store, dispose: () => opened.dispose() });
  });
  chainSpecs(name, open);
}

/** Each event's hash recomputes from its content and links to its predecessor's. */
function expectChained(events: RecordedEvent[]): void {
  let previous: string | null = null;
  events.forEach((recorded, index) => {
    expect(recorded.revision).toBe(BigInt(index));
    const link = chainLinkOf(recorded.metadata);
    expect(link).toEqual({ hash: expect.stringMatching(/^[0-9a-f]{64}$/), previousHash: previous });
    expect(eventHash(recorded, previous)).toBe(link!.hash);
    previous = link!.hash;
  });
}

function chainSpecs(name: string, open: () => Opened): void {
  describe(`The hash-chaining event store on ${name}`, () => {
    let opened: Opened;
    let adapter: EventStore;
    let store: ChainingEventStore;
    let prefix: string;
    // Unique names: a KurrentDB server is shared by every run.
    const stream = (name: string) => `${prefix}-${name}`;

    beforeEach(() => {
      opened = open();
      adapter = opened.adapter;
      store = new ChainingEventStore(adapter);
      prefix = `chain${randomUUID().replace(/-/g, '').slice(0, 12)}`;
    });
    afterEach(() => opened.dispose());

    it('chains every event of a stream to its predecessor, across appends of every kind', async () => {
      await store.appendToStream(stream('a'), [event('A'), event('B')], 'no_stream');
      await store.appendToStream(stream('a'), [event('C')], 1n);
      await store.appendToStream(stream('a'), [event('D')], 'stream_exists');
      await store.appendToStream(stream('a'), [event('E'), event('F')], 'any');
      await store.appendToStreams([
        { streamId: stream('a'), events: [event('G')], expectedRevision: 5n },
        { streamId: stream('b'), events: [event('H')], expectedRevision: 'any' },
      ]);
      const a = await store.readStream(stream('a'));
      expect(a.map((e) => e.type)).toEqual(['A', 'B', 'C', 'D', 'E', 'F', 'G']);
      expectChained(a);
      expectChained(await store.readStream(stream('b')));
    });

    it('passes a part without events on as a check only', async () => {
      await store.appendToStream(stream('seat'), [event('SeatAssigned')], 'no_stream');
      await store.appendToStream(stream('seat'), [event('SeatReleased')], 0n);
      await expect(
        store.appendToStreams([
          { streamId: stream('seat'), events: [], expectedRevision: 0n },
          { streamId: stream('user'), events: [event('FactorConfirmed')], expectedRevision: 'any' },
        ]),
      ).rejects.toMatchObject({ name: 'WrongExpectedRevisionError', streamId: stream('seat') });
      expect(await store.readStream(stream('user'))).toEqual([]);
      const [checked, written] = await store.appendToStreams([
        { streamId: stream('seat'), events: [], expectedRevision: 1n },
        { streamId: stream('user'), events: [event('FactorConfirmed')], expectedRevision: 'any' },
      ]);
      expect(checked).toEqual({ nextExpectedRevision: 1n, position: 0n });
      expect(written.nextExpectedRevision).toBe(0n);
      expectChained(await store.readStream(stream('user')));
    });

    it('never forks a chain: concurrent appends with `any` all land, one after another', async () => {
      await store.appendToStream(stream('hot'), [event('Start')], 'no_stream');
      // Two decorators on one adapter: their reads of the head race for real.
      const other = new ChainingEventStore(adapter);
      const results = await Promise.all(
        Array.from({ length: 12 }, (_, i) =>
          (i % 2 ? other : store).appendToStream(stream('hot'), [event(`Try${i}`)], 'any'),
        ),
      );
      expect(new Set(results.map((r) => r.nextExpectedRevision)).size).toBe(12);
      const events = await store.readStream(stream('hot'));
      expect(events).toHaveLength(13);
      expectChained(events);
    });

    it('lets an exact revision that moved be refused as before, writing nothing', async () => {
      await store.appendToStream(stream('c'), [event('A')], 'no_stream');
      await store.appendToStream(stream('c'), [event('B')], 0n);
      await expect(store.appendToStream(stream('c'), [event('C')], 0n)).rejects.toBeInstanceOf(
        WrongExpectedRevisionError,
      );
      await expect(store.appendToStream(stream('c'), [event('C')], 7n)).rejects.toBeInstanceOf(
        WrongExpectedRevisionError,
      );
      await expect(
        store.appendToStream(stream('none'), [event('C')], 'stream_exists'),
      ).rejects.toMatchObject({ expected: 'stream_exists', actual: 'no_stream' });
      expect(await store.readStream(stream('c'))).toHaveLength(2);
      expect(await store.readStream(stream('none'))).toEqual([]);
    });

    describe('recognises a retried batch after the stream moved on, whose hashes would now differ', () => {
      it('sent again with its exact revision', async () => {
        const batch = [event('A'), event('B')];
        const first = await store.appendToStream(stream('r1'), batch, 'no_stream');
        await store.appendToStream(stream('r1'), [event('Later')], 1n);
        const again = await store.appendToStream(stream('r1'), retimed(batch), 'no_stream');
        expect(again).toEqual(first);
        const events = await store.readStream(stream('r1'));
        expect(events.map((e) => e.type)).toEqual(['A', 'B', 'Later']);
        expectChained(events);
      });

      it('sent again with `any`', async () => {
        await store.appendToStream(stream('r2'), [event('Before')], 'no_stream');
        const batch = withCommand([event('A'), event('B')]);
        const first = await store.appendToStream(stream('r2'), batch, 'any');
        await store.appendToStream(stream('r2'), [event('Later')], 'any');
        const again = await store.appendToStream(stream('r2'), retimed(batch), 'any');
        expect(again).toEqual(first);
        const events = await store.readStream(stream('r2'));
        expect(events.map((e) => e.type)).toEqual(['Before', 'A', 'B', 'Later']);
        expectChained(events);
      });

      it('sent again with `any`, at the revision it was first appended at: how KurrentDB knows it', async () => {
        const sent: ExpectedRevision[] = [];
        const recording = new Proxy(adapter, {
          get(target, property) {
            if (property === 'appendToStream') {
              return (streamId: string, events: NewEvent[], expected: ExpectedRevision) => {
                sent.push(expected);
                return target.appendToStream(streamId, events, expected);
              };
            }
            const value: unknown = Reflect.get(target, property);
            return typeof value === 'function' ? (value as () => unknown).bind(target) : value;
          },
        });
        const chained = new ChainingEventStore(recording);
        await chained.appendToStream(stream('r4'), [event('Before')], 'no_stream');
        const batch = withCommand([event('A'), event('B')]);
        await chained.appendToStream(stream('r4'), batch, 'any');
        await chained.appendToStream(stream('r4'), [event('Later')], 'any');
        expect(sent).toEqual(['no_stream', 0n, 2n]);
        await chained.appendToStream(stream('r4'), retimed(batch), 'any');
        expect(sent[3]).toBe(0n);
        expect(await store.readStream(stream('r4'))).toHaveLength(4);
      });

      it('in a multi-stream append', async () => {
        await store.appendToStream(stream('r3-seat'), [event('Activated')], 'no_stream');
        const [seat, factor] = withCommand([event('SeatAssigned'), event('FactorConfirmed')]);
        const parts = () => [
          { streamId: stream('r3-seat'), events: [seat], expectedRevision: 0n },
          { streamId: stream('r3-user'), events: [factor], expectedRevision: 'no_stream' as const },
        ];
        const first = await store.appendToStreams(parts());
        await store.appendToStream(stream('r3-seat'), [event('SeatReleased')], 1n);
        await store.appendToStream(stream('r3-user'), [event('EnrollmentReset')], 0n);
        const again = await store.appendToStreams(
          parts().map((p) => ({ ...p, events: retimed(p.events) })),
        );
        expect(again).toEqual(first);
        expectChained(await store.readStream(stream('r3-seat')));
        expectChained(await store.readStream(stream('r3-user')));
        expect(await store.readStream(stream('r3-user'))).toHaveLength(2);
      });
    });

    it('starts a stream’s chain after events written before chains, with no previous hash', async () => {
      await adapter.appendToStream(stream('old'), [event('Old1'), event('Old2')], 'no_stream');
      await store.appendToStream(stream('old'), [event('New1'), event('New2')], 1n);
      const [, old2, new1, new2] = await store.readStream(stream('old'));
      expect(chainLinkOf(old2.metadata)).toBeUndefined();
      expect(chainLinkOf(new1.metadata)?.previousHash).toBeNull();
      expect(eventHash(new1, null)).toBe(chainLinkOf(new1.metadata)?.hash);
      expect(chainLinkOf(new2.metadata)?.previousHash).toBe(chainLinkOf(new1.metadata)?.hash);
    });

    it('replaces chain fields a caller passed, and hashes what is stored when JSON changes the data', async () => {
      const forged = event('A', { ratio: Number.NaN, list: [1, undefined] });
      (forged.metadata as unknown as Record<string, unknown>).hash = 'f'.repeat(64);
      (forged.metadata as unknown as Record<string, unknown>).previousHash = 'e'.repeat(64);
      await store.appendToStream(stream('json'), [forged], 'no_stream');
      const [stored] = await store.readStream(stream('json'));
      expect(stored.data).toEqual({ ratio: null, list: [1, null] });
      expect(chainLinkOf(stored.metadata)?.previousHash).toBeNull();
      expect(eventHash(stored, null)).toBe(chainLinkOf(stored.metadata)?.hash);
    });

    it('refuses an event RFC 8785 cannot hash (a lone surrogate), appending nothing', async () => {
      await expect(
        store.appendToStream(stream('bad'), [event('A', { name: 'x\ud800' })], 'no_stream'),
      ).rejects.toThrow(/surrogate/i);
      expect(await store.readStream(stream('bad'))).toEqual([]);
    });
  });
}

describe('The hash-chaining event store on SQLite, in the file', () => {
  it('stores the chain fields in the metadata column, as every reader of the file sees them', async () => {
    const dir = tempDir('mfa-chain-');
    const store = new ChainingEventStore(new SqliteEventStore(join(dir, 'events.sqlite')));
    await store.appendToStream('test-raw', [event('A')], 'no_stream');
    await store.close();
    const db = new Database(join(dir, 'events.sqlite'), { readonly: true });
    const metadata = JSON.parse(
      db
        .prepare('SELECT metadata FROM events WHERE stream_id = ?')
        .pluck()
        .get('test-raw') as string,
    ) as Record<string, unknown>;
    db.close();
    rmSync(dir, { recursive: true, force: true });
    expect(metadata).toMatchObject({ hash: expect.any(String), previousHash: null });
  });
});

/** The same events (same ids) decided again later: what a retry after a lost answer sends. */
function retimed(events: NewEvent[]): NewEvent[] {
  return events.map((e) => ({
    ...e,
    metadata: { ...e.metadata, occurredAt: new Date(Date.now() + 60_000).toISOString() },
  }));
}

/** One command's events: what the command handler appends (one command id, one id each). */
function withCommand(events: NewEvent[]): NewEvent[] {
  const commandId = randomUUID();
  return events.map((e) => ({ ...e, metadata: { ...e.metadata, commandId } }));
}
