import { randomUUID } from 'node:crypto';
import {
  EventStore,
  NewEvent,
  RecordedEvent,
  WrongExpectedRevisionError,
} from '../../src/event-store/event-store.port';

/**
 * The behaviour every event store adapter must have. Each adapter's spec
 * calls this with a factory; streams get unique names so that a shared
 * server (KurrentDB) can run the suite repeatedly.
 */
export interface StoreUnderTest {
  store: EventStore;
  dispose(): Promise<void>;
}

export function eventStoreContract(name: string, open: () => Promise<StoreUnderTest>): void {
  describe(`${name} event store contract`, () => {
    let subject: StoreUnderTest;
    let store: EventStore;
    let prefix: string;

    beforeEach(async () => {
      subject = await open();
      store = subject.store;
      prefix = `contract${randomUUID().replace(/-/g, '').slice(0, 12)}`;
    });
    afterEach(() => subject.dispose());

    const stream = (name: string) => `${prefix}-${name}`;

    it('appends to a new stream and reads it back with data and metadata intact', async () => {
      const events = [event('UserRegistered', { name: 'Zoë Ångström', tags: ['a', { b: null }] })];
      const result = await store.appendToStream(stream('a'), events, 'no_stream');
      expect(result.nextExpectedRevision).toBe(0n);
      expect(result.position).toBeGreaterThan(0n);

      const [read] = await store.readStream(stream('a'));
      expect(read).toMatchObject({
        streamId: stream('a'),
        revision: 0n,
        position: result.position,
        type: 'UserRegistered',
        data: events[0].data,
        metadata: events[0].metadata,
      });
    });

    it('checks the expected revision: exact, no_stream, stream_exists and any', async () => {
      await expect(
        store.appendToStream(stream('b'), [event('A')], 'stream_exists'),
      ).rejects.toThrow(WrongExpectedRevisionError);
      await store.appendToStream(stream('b'), [event('A'), event('B')], 'no_stream');
      await expect(
        store.appendToStream(stream('b'), [event('C')], 'no_stream'),
      ).rejects.toMatchObject({
        name: 'WrongExpectedRevisionError',
        streamId: stream('b'),
        actual: 1n,
      });
      await expect(store.appendToStream(stream('b'), [event('C')], 0n)).rejects.toMatchObject({
        actual: 1n,
      });
      expect((await store.appendToStream(stream('b'), [event('C')], 1n)).nextExpectedRevision).toBe(
        2n,
      );
      expect(
        (await store.appendToStream(stream('b'), [event('D')], 'stream_exists'))
          .nextExpectedRevision,
      ).toBe(3n);
      expect(
        (await store.appendToStream(stream('b'), [event('E')], 'any')).nextExpectedRevision,
      ).toBe(4n);
      expect((await store.readStream(stream('b'))).map((e) => e.type)).toEqual([
        'A',
        'B',
        'C',
        'D',
        'E',
      ]);
    });

    it('a refused append writes nothing', async () => {
      await store.appendToStream(stream('c'), [event('A')], 'no_stream');
      await expect(store.appendToStream(stream('c'), [event('B'), event('C')], 5n)).rejects.toThrow(
        WrongExpectedRevisionError,
      );
      expect(await store.readStream(stream('c'))).toHaveLength(1);
    });

    it('appending the same event ids again is a no-op that answers the first result', async () => {
      const batch = [event('A'), event('B')];
      const first = await store.appendToStream(stream('d'), batch, 'no_stream');
      const again = await store.appendToStream(stream('d'), batch, 'no_stream');
      expect(again.nextExpectedRevision).toBe(first.nextExpectedRevision);
      expect(again.position).toBe(first.position);
      // Said where the store can tell (SQLite does; KurrentDB answers as if it wrote).
      expect(first.alreadyStored).not.toBe(true);
      expect(again.alreadyStored).not.toBe(false);
      expect(await store.readStream(stream('d'))).toHaveLength(2);
      const all = await readEverything(store, first.position - 2n);
      expect(all.filter((e) => e.streamId === stream('d'))).toHaveLength(2);
    });

    describe('multi-stream appends', () => {
      it('append to several streams with one expected revision each, in one position range', async () => {
        await store.appendToStream(stream('m-seat'), [event('SubscriptionActivated')], 'no_stream');
        const [seat, factor] = await store.appendToStreams([
          { streamId: stream('m-seat'), events: [event('SeatAssigned')], expectedRevision: 0n },
          {
            streamId: stream('m-user'),
            events: [event('UserRegistered'), event('FactorConfirmed')],
            expectedRevision: 'no_stream',
          },
        ]);
        expect(seat.nextExpectedRevision).toBe(1n);
        expect(factor.nextExpectedRevision).toBe(1n);
        const [assigned] = await store.readStream(stream('m-seat'), { fromRevision: 1n });
        const [, confirmed] = await store.readStream(stream('m-user'));
        expect(assigned.position).toBe(seat.position);
        expect(confirmed.position).toBe(factor.position);
      });

      it('are all or nothing where the store is atomic, and in the order given where it is not', async () => {
        await store.appendToStream(stream('m2-seat'), [event('A')], 'no_stream');
        await expect(
          store.appendToStreams([
            { streamId: stream('m2-user'), events: [event('B')], expectedRevision: 'no_stream' },
            { streamId: stream('m2-seat'), events: [event('C')], expectedRevision: 7n },
          ]),
        ).rejects.toMatchObject({
          name: 'WrongExpectedRevisionError',
          streamId: stream('m2-seat'),
        });
        expect(await store.readStream(stream('m2-seat'))).toHaveLength(1);
        // A store that cannot append atomically (KurrentDB before 25.1) wrote the first part.
        expect(await store.readStream(stream('m2-user'))).toHaveLength(
          (await store.multiStreamAtomicity()) === 'atomic' ? 0 : 1,
        );
      });

      it('check a stream they write nothing to: a decision that relied on it cannot commit once it moved', async () => {
        await store.appendToStream(stream('m3-seat'), [event('SeatAssigned')], 'no_stream');
        const relied = 0n;
        await store.appendToStream(stream('m3-seat'), [event('SeatReleased')], 0n);
        await expect(
          store.appendToStreams([
            { streamId: stream('m3-seat'), events: [], expectedRevision: relied },
            {
              streamId: stream('m3-user'),
              events: [event('FactorConfirmed')],
              expectedRevision: 'no_stream',
            },
          ]),
        ).rejects.toMatchObject({
          name: 'WrongExpectedRevisionError',
          streamId: stream('m3-seat'),
        });
        expect(await store.readStream(stream('m3-user'))).toEqual([]);
        const [checked, written] = await store.appendToStreams([
          { streamId: stream('m3-seat'), events: [], expectedRevision: 1n },
          {
            streamId: stream('m3-user'),
            events: [event('FactorConfirmed')],
            expectedRevision: 'no_stream',
          },
        ]);
        expect(checked).toEqual({ nextExpectedRevision: 1n, position: 0n });
        expect(written.nextExpectedRevision).toBe(0n);
      });
    });

    it('finds the events a command appended to a stream, by command id', async () => {
      const commandId = randomUUID();
      const mine = [withCommand(event('A'), commandId), withCommand(event('B'), commandId)];
      await store.appendToStream(stream('cmd'), [event('Before')], 'no_stream');
      await store.appendToStream(stream('cmd'), mine, 0n);
      await store.appendToStream(stream('cmd'), [event('After')], 2n);
      await store.appendToStream(
        stream('cmd-other'),
        [withCommand(event('Elsewhere'), commandId)],
        'no_stream',
      );
      const found = await store.readCommand(stream('cmd'), commandId);
      expect(found.map((e) => [e.type, e.revision])).toEqual([
        ['A', 1n],
        ['B', 2n],
      ]);
      expect(await store.readCommand(stream('cmd'), randomUUID())).toEqual([]);
      expect(await store.readCommand(stream('never-written'), commandId)).toEqual([]);
      // Appended after a first lookup: still found (an adapter may cache what it read).
      const later = randomUUID();
      await store.appendToStream(stream('cmd'), [withCommand(event('Later'), later)], 3n);
      expect((await store.readCommand(stream('cmd'), later)).map((e) => e.type)).toEqual(['Later']);
    });

    it('reads a stream forwards and backwards, from a revision, with a limit', async () => {
      await store.appendToStream(
        stream('e'),
        ['A', 'B', 'C', 'D'].map((t) => event(t)),
        'no_stream',
      );
      const types = (events: RecordedEvent[]) => events.map((e) => e.type);
      expect(types(await store.readStream(stream('e'), { fromRevision: 1n, maxCount: 2 }))).toEqual(
        ['B', 'C'],
      );
      expect(
        types(await store.readStream(stream('e'), { direction: 'backwards', maxCount: 2 })),
      ).toEqual(['D', 'C']);
      expect(
        types(await store.readStream(stream('e'), { direction: 'backwards', fromRevision: 1n })),
      ).toEqual(['B', 'A']);
      expect(await store.readStream(stream('never-written'))).toEqual([]);
    });

    it('reads the global log after a position, in order, across streams', async () => {
      const start = await store.headPosition();
      await store.appendToStream(stream('f1'), [event('A')], 'no_stream');
      await store.appendToStream(stream('f2'), [event('B'), event('C')], 'no_stream');
      await store.appendToStream(stream('f1'), [event('D')], 0n);
      const mine = (await readEverything(store, start)).filter((e) =>
        e.streamId.startsWith(prefix),
      );
      expect(mine.map((e) => e.type)).toEqual(['A', 'B', 'C', 'D']);
      for (let i = 1; i < mine.length; i++)
        expect(mine[i].position).toBeGreaterThan(mine[i - 1].position);
      const afterSecond = await store.readAll({ after: mine[1].position, maxCount: 1 });
      expect(afterSecond.map((e) => e.type)).toEqual(['C']);
      expect(await store.headPosition()).toBe(mine[3].position);
    });

    it('reads the log in pages of chosen types, saying how far each page reached', async () => {
      const start = await store.headPosition();
      await store.appendToStream(stream('p1'), [event('A'), event('B'), event('A')], 'no_stream');
      await store.appendToStream(stream('p2'), [event('C'), event('A')], 'no_stream');
      const head = await store.headPosition();
      const seen: RecordedEvent[] = [];
      let scanned = 0;
      for (let after = start; ;) {
        const page = await store.readPage({ after, maxCount: 2, types: ['A', 'C'] });
        if (page.through <= after) {
          expect(page.events).toEqual([]);
          break;
        }
        for (const e of page.events) {
          expect(e.position).toBeGreaterThan(after);
          expect(e.position).toBeLessThanOrEqual(page.through);
        }
        seen.push(...page.events);
        scanned += page.scanned;
        after = page.through;
      }
      const mine = seen.filter((e) => e.streamId.startsWith(prefix));
      expect(mine.map((e) => e.type)).toEqual(['A', 'A', 'C', 'A']);
      expect(mine[0].data).toEqual(event('A').data);
      expect(mine[3]).toMatchObject({ streamId: stream('p2'), revision: 1n, position: head });
      expect(scanned).toBeGreaterThanOrEqual(5);
      const all = await store.readPage({ after: start, maxCount: 100 });
      expect(all.events.filter((e) => e.streamId.startsWith(prefix)).map((e) => e.type)).toEqual([
        'A',
        'B',
        'A',
        'C',
        'A',
      ]);
    });

    describe("one firm's events", () => {
      // Look-alike firm ids: a prefix of another, one with a regex metacharacter.
      const firms = () => ({
        acme: `${prefix}acme`,
        acme2: `${prefix}acme-2`,
        dotted: `${prefix}ac.e`,
      });
      const firmEvent = (firmId: string, type: string, data: Record<string, unknown> = {}) => {
        const e = event(type, data);
        return { ...e, metadata: { ...e.metadata, firmId } };
      };

      async function readWholeFirm(firmId: string, maxCount: number, types?: string[]) {
        const seen: RecordedEvent[] = [];
        let pages = 0;
        for (let after = 0n; ; pages++) {
          const page = await store.readFirm(firmId, { after, maxCount, types });
          expect(page.events.length).toBeLessThanOrEqual(maxCount);
          if (page.through === after) {
            expect(page.events).toEqual([]);
            return { events: seen, pages };
          }
          expect(page.through).toBeGreaterThan(after);
          for (const e of page.events) {
            expect(e.position).toBeGreaterThan(after);
            expect(e.position).toBeLessThanOrEqual(page.through);
          }
          seen.push(...page.events);
          after = page.through;
        }
      }

      it('are read in log order, in pages, and never mix with a look-alike firm', async () => {
        const { acme, acme2, dotted } = firms();
        await store.appendToStream(
          `subscription-${acme}`,
          [firmEvent(acme, 'SubscriptionRequested', { n: 1 })],
          'no_stream',
        );
        await store.appendToStream(
          `user-${acme2}/ann`,
          [firmEvent(acme2, 'UserRegistered', { userId: 'ann' })],
          'no_stream',
        );
        await store.appendToStream(
          `user-${acme}/ann`,
          [
            firmEvent(acme, 'UserRegistered', { userId: 'ann' }),
            firmEvent(acme, 'FactorConfirmed', { userId: 'ann' }),
          ],
          'no_stream',
        );
        await store.appendToStream(
          `user-${dotted}/bob`,
          [firmEvent(dotted, 'UserRegistered', { userId: 'bob' })],
          'no_stream',
        );
        await store.appendToStream(
          `subscription-${acme2}`,
          [firmEvent(acme2, 'SubscriptionRequested')],
          'no_stream',
        );
        await store.appendToStream(
          `verification-${acme}/ann`,
          [firmEvent(acme, 'TotpVerificationSucceeded', { userId: 'ann' })],
          'no_stream',
        );
        // In acme's stream but naming another firm (a hand edit): nobody's.
        await store.appendToStream(
          `user-${acme}/eve`,
          [firmEvent(acme2, 'UserRegistered', { userId: 'eve' })],
          'no_stream',
        );
        // Streams that only look like acme's.
        await store.appendToStream(`${acme}-x`, [firmEvent(acme, 'Stray')], 'no_stream');
        await store.appendToStream(`User-${acme}`, [firmEvent(acme, 'Stray')], 'no_stream');
        await store.appendToStream(`user-${acme}x/1`, [firmEvent(acme, 'Stray')], 'no_stream');

        const whole = await readWholeFirm(acme, 100);
        expect(whole.events.map((e) => `${e.streamId} ${e.type}`)).toEqual([
          `subscription-${acme} SubscriptionRequested`,
          `user-${acme}/ann UserRegistered`,
          `user-${acme}/ann FactorConfirmed`,
          `verification-${acme}/ann TotpVerificationSucceeded`,
        ]);
        expect(whole.events[0]).toMatchObject({ revision: 0n, data: { n: 1 } });
        expect(whole.events[0].metadata.firmId).toBe(acme);
        for (let i = 1; i < whole.events.length; i++) {
          expect(whole.events[i].position).toBeGreaterThan(whole.events[i - 1].position);
        }
        // Page by page: the same events, in the same order.
        const paged = await readWholeFirm(acme, 1);
        expect(paged.events).toEqual(whole.events);
        expect(paged.pages).toBeGreaterThanOrEqual(4);

        expect((await readWholeFirm(acme2, 2)).events.map((e) => e.streamId)).toEqual([
          `user-${acme2}/ann`,
          `subscription-${acme2}`,
        ]);
        expect((await readWholeFirm(dotted, 10)).events.map((e) => e.streamId)).toEqual([
          `user-${dotted}/bob`,
        ]);
        expect((await readWholeFirm(`${prefix}nobody`, 10)).events).toEqual([]);
      });

      it('of chosen types only, still in log order', async () => {
        const { acme } = firms();
        await store.appendToStream(
          `user-${acme}/ann`,
          ['UserRegistered', 'TotpEnrollmentStarted', 'FactorConfirmed', 'EnrollmentReset'].map(
            (type) => firmEvent(acme, type, { userId: 'ann' }),
          ),
          'no_stream',
        );
        const { events } = await readWholeFirm(acme, 1, ['FactorConfirmed', 'UserRegistered']);
        expect(events.map((e) => [e.type, e.revision])).toEqual([
          ['UserRegistered', 0n],
          ['FactorConfirmed', 2n],
        ]);
      });
    });

    it('of many concurrent appends at the same expected revision exactly one wins', async () => {
      await store.appendToStream(stream('g'), [event('Start')], 'no_stream');
      const attempts = await Promise.allSettled(
        Array.from({ length: 10 }, (_, i) =>
          store.appendToStream(stream('g'), [event(`Try${i}`)], 0n),
        ),
      );
      const won = attempts.filter((a) => a.status === 'fulfilled');
      const lost = attempts.filter((a) => a.status === 'rejected');
      expect(won).toHaveLength(1);
      for (const a of lost)
        expect((a as PromiseRejectedResult).reason).toBeInstanceOf(WrongExpectedRevisionError);
      expect(await store.readStream(stream('g'))).toHaveLength(2);
    });

    it('a subscription catches up from a position, then follows live appends in order', async () => {
      await store.appendToStream(stream('h'), [event('Before')], 'no_stream');
      const from = await store.headPosition();
      await store.appendToStream(stream('h'), [event('CatchUp1'), event('CatchUp2')], 0n);

      const seen: RecordedEvent[] = [];
      let caughtUp!: () => void;
      const caughtUpOnce = new Promise<void>((resolve) => (caughtUp = resolve));
      let arrived!: () => void;
      const allArrived = new Promise<void>((resolve) => (arrived = resolve));
      const subscription = store.subscribeToAll({
        after: from,
        onEvents: async (events) => {
          seen.push(...events.filter((e) => e.streamId.startsWith(prefix)));
          if (seen.length === 4) arrived();
        },
        onCaughtUp: () => caughtUp(),
      });
      await caughtUpOnce;
      await store.appendToStream(stream('h'), [event('Live1')], 2n);
      await store.appendToStream(stream('h2'), [event('Live2')], 'no_stream');
      await allArrived;
      await subscription.stop();
      expect(seen.map((e) => e.type)).toEqual(['CatchUp1', 'CatchUp2', 'Live1', 'Live2']);
    });

    it('a subscription whose handler throws stops and reports the error', async () => {
      await store.appendToStream(stream('i'), [event('Poison')], 'no_stream');
      const from = (await store.headPosition()) - 1n;
      const failure = new Promise<unknown>((resolve) => {
        store.subscribeToAll({
          after: from,
          onEvents: async (events) => {
            if (events.some((e) => e.streamId === stream('i'))) throw new Error('handler failed');
          },
          onError: resolve,
        });
      });
      expect(await failure).toEqual(new Error('handler failed'));
    });
  });
}

export function event(type: string, data: Record<string, unknown> = {}): NewEvent {
  return {
    type,
    data: data as NewEvent['data'],
    metadata: {
      eventId: randomUUID(),
      firmId: 'contract-firm',
      actor: { id: 'tester', role: 'system' },
      correlationId: randomUUID(),
      causationId: randomUUID(),
      commandId: randomUUID(),
      occurredAt: new Date().toISOString(),
      schemaVersion: 1,
    },
  };
}

function withCommand(newEvent: NewEvent, commandId: string): NewEvent {
  return { ...newEvent, metadata: { ...newEvent.metadata, commandId } };
}

async function readEverything(store: EventStore, after: bigint): Promise<RecordedEvent[]> {
  const all: RecordedEvent[] = [];
  for (;;) {
    const batch = await store.readAll({ after, maxCount: 500 });
    if (batch.length === 0) return all;
    all.push(...batch);
    after = batch[batch.length - 1].position;
  }
}
