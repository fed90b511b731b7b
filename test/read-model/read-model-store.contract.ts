import type {
  QuarantinedEvent,
  ReadModelSchema,
  ReadModelStore,
  ReadModelTarget,
} from '../../src/read-model/read-model-store.port';

/**
 * The behaviour every read-model store adapter must have. Each adapter's spec
 * calls this with a factory that gives a fresh, empty store.
 */
export interface ReadModelStoreUnderTest {
  store: ReadModelStore;
  dispose(): Promise<void>;
}

const schema: ReadModelSchema = {
  projection: 'contract-people',
  collections: [
    {
      name: 'people',
      fields: ['firmId', 'nameKey', 'orgKey', 'role'],
      indexes: [['firmId', 'nameKey', 'id', 'orgKey', 'role']],
      search: ['nameKey', 'orgKey'],
    },
    { name: 'totals', fields: [], indexes: [] },
  ],
};

export function readModelStoreContract(
  name: string,
  open: () => Promise<ReadModelStoreUnderTest>,
): void {
  describe(`${name} read-model store contract`, () => {
    let subject: ReadModelStoreUnderTest;
    let store: ReadModelStore;
    let target: ReadModelTarget;

    beforeEach(async () => {
      subject = await open();
      store = subject.store;
      const generation = await store.createGeneration(schema.projection, 1);
      await store.prepare(schema, generation);
      target = { projection: schema.projection, generation };
    });
    afterEach(() => subject.dispose());

    const person = (firmId: string, id: string, name: string, org = '', role = 'a') => ({
      collection: 'people',
      id: `${firmId}/${id}`,
      doc: { firmId, name, nameKey: name.toLowerCase(), orgKey: org.toLowerCase(), role },
    });

    it('starts a new generation at position 0', async () => {
      expect(await store.checkpoint(target)).toEqual({
        projection: schema.projection,
        generation: target.generation,
        version: 1,
        position: 0n,
      });
      expect(await store.createGeneration(schema.projection, 1)).toBe(target.generation + 1);
    });

    it('commits documents and the checkpoint together', async () => {
      const outcome = await store.commit(target, {
        expected: 0n,
        position: 7n,
        changes: [person('f', 'u1', 'Ann'), { collection: 'totals', id: 'f', doc: { n: 1 } }],
      });
      expect(outcome).toBe('committed');
      expect((await store.checkpoint(target))?.position).toBe(7n);
      expect(await store.get(target, 'totals', 'f')).toEqual({ n: 1 });
      expect(await store.get(target, 'people', 'f/u1')).toMatchObject({ name: 'Ann' });
    });

    it('refuses a commit whose expected checkpoint moved, and writes none of it', async () => {
      await store.commit(target, { expected: 0n, position: 5n, changes: [] });
      const outcome = await store.commit(target, {
        expected: 0n,
        position: 9n,
        changes: [{ collection: 'totals', id: 'f', doc: { n: 99 } }],
      });
      expect(outcome).toBe('conflict');
      expect(await store.get(target, 'totals', 'f')).toBeUndefined();
      expect((await store.checkpoint(target))?.position).toBe(5n);
    });

    it('deletes, replaces and keeps the last of two changes to one document', async () => {
      await store.commit(target, {
        expected: 0n,
        position: 1n,
        changes: [
          { collection: 'totals', id: 'a', doc: { n: 1 } },
          { collection: 'totals', id: 'b', doc: { n: 2 } },
        ],
      });
      await store.commit(target, {
        expected: 1n,
        position: 2n,
        changes: [
          { collection: 'totals', id: 'a', doc: null },
          { collection: 'totals', id: 'b', doc: { n: 3, nested: { list: [1, 'x', null] } } },
        ],
      });
      expect(await store.scan(target, 'totals')).toEqual([
        { id: 'b', doc: { n: 3, nested: { list: [1, 'x', null] } } },
      ]);
      expect(await store.get(target, 'totals', 'a')).toBeUndefined();
      expect(await store.get(target, 'totals', 'b')).toEqual({
        n: 3,
        nested: { list: [1, 'x', null] },
      });
    });

    const quarantined = (
      position: bigint,
      generation = target.generation,
      consumer = schema.projection,
    ): QuarantinedEvent => ({
      consumer,
      generation,
      position,
      eventType: 'UserRegistered',
      streamId: 'user-acme/u-1',
      reason: 'data is not valid JSON',
      at: '2026-01-01T00:00:00.000Z',
    });

    it('commits quarantined events with the checkpoint, and a refused commit writes none of them', async () => {
      const big = 18_446_744_073_709_551_000n; // KurrentDB positions are unsigned 64-bit
      await store.commit(target, {
        expected: 0n,
        position: 12n,
        changes: [],
        quarantined: [quarantined(10n), quarantined(9n), quarantined(big)],
      });
      expect(await store.quarantined(schema.projection)).toEqual([
        quarantined(9n),
        quarantined(10n),
        quarantined(big),
      ]);
      expect(
        await store.commit(target, {
          expected: 0n,
          position: 20n,
          changes: [],
          quarantined: [quarantined(20n)],
        }),
      ).toBe('conflict');
      // Quarantined again (a replay that failed again): one record, the later reason.
      await store.commit(target, {
        expected: 12n,
        position: 13n,
        changes: [],
        quarantined: [{ ...quarantined(10n), reason: 'again' }],
      });
      expect(await store.quarantined(schema.projection)).toEqual([
        quarantined(9n),
        { ...quarantined(10n), reason: 'again' },
        quarantined(big),
      ]);
    });

    it('keeps quarantined events per consumer and generation; dropping a generation drops its own', async () => {
      await store.commit(target, {
        expected: 0n,
        position: 5n,
        changes: [],
        quarantined: [quarantined(5n)],
      });
      const next = await store.createGeneration(schema.projection, 1);
      await store.prepare(schema, next);
      await store.commit(
        { projection: schema.projection, generation: next },
        { expected: 0n, position: 5n, changes: [], quarantined: [quarantined(5n, next)] },
      );
      await store.quarantine(quarantined(5n, 0, 'mailer'));
      await store.quarantine(quarantined(5n, 0, 'mailer'));
      expect(await store.quarantined()).toEqual([
        quarantined(5n),
        quarantined(5n, next),
        quarantined(5n, 0, 'mailer'),
      ]);
      expect(await store.quarantined('mailer')).toEqual([quarantined(5n, 0, 'mailer')]);
      await store.dropGeneration(schema, target.generation);
      expect(await store.quarantined()).toEqual([
        quarantined(5n, next),
        quarantined(5n, 0, 'mailer'),
      ]);
      await store.releaseQuarantined('mailer', 5n);
      expect(await store.quarantined()).toEqual([quarantined(5n, next)]);
    });

    it("a skip takes the event out of the consumer's quarantine for good, until the skip is removed", async () => {
      await store.commit(target, {
        expected: 0n,
        position: 5n,
        changes: [],
        quarantined: [quarantined(5n), quarantined(4n)],
      });
      await store.quarantine(quarantined(5n, 0, 'mailer'));
      await store.recordSkip(schema.projection, 5n, 'bad data');
      expect(await store.quarantined()).toEqual([quarantined(4n), quarantined(5n, 0, 'mailer')]);
      // Quarantined again by a rebuild that read the skips before: still not listed.
      await store.commit(target, {
        expected: 5n,
        position: 6n,
        changes: [],
        quarantined: [quarantined(5n)],
      });
      expect(await store.quarantined(schema.projection)).toEqual([quarantined(4n)]);
      await store.removeSkip(schema.projection, 5n);
      expect(await store.skips(schema.projection)).toEqual([]);
      expect(await store.quarantined(schema.projection)).toEqual([
        quarantined(4n),
        quarantined(5n),
      ]);
    });

    it('keeps the event a process manager keeps failing on, and replay requests', async () => {
      const failure = {
        name: 'mailer',
        position: 7n,
        eventType: 'EmailQueued',
        streamId: 'notifications-acme',
        error: 'SMTP down',
        attempts: 1,
        since: '2026-01-01T00:00:00.000Z',
        at: '2026-01-01T00:00:00.000Z',
      };
      await store.saveProcessFailure(failure);
      const later = {
        ...failure,
        attempts: 2,
        error: 'still down',
        at: '2026-01-01T00:00:01.000Z',
      };
      await store.saveProcessFailure(later);
      expect(await store.processFailures()).toEqual([later]);
      await store.clearProcessFailure('mailer');
      expect(await store.processFailures()).toEqual([]);

      await store.requestReplay('policy', 3n);
      await store.requestReplay('mailer', 7n);
      await store.requestReplay('mailer', 7n);
      expect((await store.replayRequests()).map((r) => [r.name, r.position])).toEqual([
        ['mailer', 7n],
        ['policy', 3n],
      ]);
      await store.clearReplayRequest('mailer', 7n);
      expect((await store.replayRequests()).map((r) => [r.name, r.position])).toEqual([
        ['policy', 3n],
      ]);
    });

    it('finds by equality, substring and keyset order, page after page', async () => {
      const names = ['delta', 'Alpha', 'charlie', 'Bravo', 'alpha', 'echo', 'Charlie'];
      await store.commit(target, {
        expected: 0n,
        position: 1n,
        changes: [
          ...names.map((n, i) =>
            person('f1', `u${i}`, n, i % 2 ? 'Acme Corp' : 'Initech', i < 3 ? 'a' : 'b'),
          ),
          person('f2', 'other', 'alpha'),
        ],
      });
      const pages: string[][] = [];
      let after: Array<string | number | null> | undefined;
      for (;;) {
        const page = await store.find(target, 'people', {
          equals: { firmId: 'f1' },
          orderBy: ['nameKey', 'id'],
          after,
          limit: 3,
        });
        if (page.length === 0) break;
        pages.push(page.map((p) => p.name as string));
        const last = page[page.length - 1];
        after = [last.nameKey as string, `f1/u${names.indexOf(last.name as string)}`];
      }
      expect(pages).toEqual([
        ['Alpha', 'alpha', 'Bravo'],
        ['charlie', 'Charlie', 'delta'],
        ['echo'],
      ]);
      const search = await store.find(target, 'people', {
        equals: { firmId: 'f1', role: 'b' },
        contains: { fields: ['nameKey', 'orgKey'], text: 'acme' },
        orderBy: ['nameKey', 'id'],
        limit: 10,
      });
      expect(search.map((p) => p.name)).toEqual(['Bravo', 'echo']);
      const regexCharacters = await store.find(target, 'people', {
        equals: { firmId: 'f1' },
        contains: { fields: ['nameKey'], text: 'a.*' },
        orderBy: ['nameKey', 'id'],
        limit: 10,
      });
      expect(regexCharacters).toEqual([]);
    });

    it('activates generations and drops old ones', async () => {
      await store.activate(target);
      expect((await store.activeGenerations()).get(schema.projection)).toBe(target.generation);
      const next = await store.createGeneration(schema.projection, 2);
      await store.prepare(schema, next);
      await store.activate({ projection: schema.projection, generation: next });
      await store.dropGeneration(schema, target.generation);
      expect((await store.activeGenerations()).get(schema.projection)).toBe(next);
      expect(await store.checkpoint(target)).toBeUndefined();
      const left = (await store.listCheckpoints()).filter(
        (c) => c.projection === schema.projection,
      );
      expect(left.map((c) => c.generation)).toEqual([next]);
    });

    it('records skips once each, per consumer, in position order', async () => {
      await store.recordSkip('p', 12n, 'bad data');
      await store.recordSkip('p', 3n, 'first');
      await store.recordSkip('p', 12n, 'again');
      await store.recordSkip('mailer', 10n, 'lost');
      expect((await store.skips('p')).map((s) => [s.position, s.note])).toEqual([
        [3n, 'first'],
        [12n, 'bad data'],
      ]);
      expect((await store.skips()).map((s) => [s.consumer, s.position])).toEqual([
        ['mailer', 10n],
        ['p', 3n],
        ['p', 12n],
      ]);
    });

    it('lists process manager checkpoints, saved under their leases', async () => {
      const mailer = await store.acquireProcessLease('mailer', 'instance-a', 60_000);
      const keeper = await store.acquireProcessLease('keeper', 'instance-a', 60_000);
      expect(await store.saveProcessCheckpoint(mailer!, undefined, 42n)).toBe(true);
      expect(await store.saveProcessCheckpoint(keeper!, undefined, 7n)).toBe(true);
      expect(await store.listProcessCheckpoints()).toEqual([
        { name: 'keeper', position: 7n },
        { name: 'mailer', position: 42n },
      ]);
    });

    describe("a process manager's lease and checkpoint (DESIGN §6: one owner at a time)", () => {
      const MINUTE = 60_000;

      it('has one holder at a time; the holder renews it and sees how long it holds', async () => {
        const a = await store.acquireProcessLease('mailer', 'instance-a', MINUTE);
        expect(a).toEqual({ name: 'mailer', owner: 'instance-a', term: 1, checkpoint: undefined });
        expect(await store.acquireProcessLease('mailer', 'instance-b', MINUTE)).toBeUndefined();
        // Another process manager's lease is another lease.
        expect(await store.acquireProcessLease('policy', 'instance-b', MINUTE)).toMatchObject({
          term: 1,
        });
        expect(await store.renewProcessLease(a!, MINUTE)).toBe(true);
        expect(await store.holdsProcessLease(a!, MINUTE / 2)).toBe(true);
        expect(await store.holdsProcessLease(a!, 2 * MINUTE)).toBe(false);
        // Taking it again is a new term: the earlier term is fenced off.
        const again = await store.acquireProcessLease('mailer', 'instance-a', MINUTE);
        expect(again?.term).toBe(2);
        expect(await store.holdsProcessLease(a!, 0)).toBe(false);
        expect(await store.renewProcessLease(a!, MINUTE)).toBe(false);
      });

      it('is taken over once expired; the former holder can then neither renew nor save', async () => {
        const a = await store.acquireProcessLease('mailer', 'instance-a', 0);
        expect(await store.saveProcessCheckpoint(a!, undefined, 5n)).toBe(true);
        const b = await store.acquireProcessLease('mailer', 'instance-b', MINUTE);
        expect(b).toEqual({ name: 'mailer', owner: 'instance-b', term: 2, checkpoint: 5n });
        expect(await store.renewProcessLease(a!, MINUTE)).toBe(false);
        expect(await store.holdsProcessLease(a!, 0)).toBe(false);
        expect(await store.saveProcessCheckpoint(a!, 5n, 9n)).toBe(false);
        expect(await store.processCheckpoint('mailer')).toBe(5n);
        expect(await store.holdsProcessLease(b!, 0)).toBe(true);
      });

      it('renews an expired lease nobody took: nobody else worked meanwhile', async () => {
        const a = await store.acquireProcessLease('mailer', 'instance-a', 0);
        expect(await store.holdsProcessLease(a!, 0)).toBe(false);
        expect(await store.renewProcessLease(a!, MINUTE)).toBe(true);
        expect(await store.holdsProcessLease(a!, 0)).toBe(true);
        expect(await store.acquireProcessLease('mailer', 'instance-b', MINUTE)).toBeUndefined();
      });

      it('is free at once when released; a former holder releasing it changes nothing', async () => {
        const a = await store.acquireProcessLease('mailer', 'instance-a', MINUTE);
        await store.releaseProcessLease(a!);
        const b = await store.acquireProcessLease('mailer', 'instance-b', MINUTE);
        expect(b?.term).toBe(2);
        await store.releaseProcessLease(a!);
        expect(await store.acquireProcessLease('mailer', 'instance-a', MINUTE)).toBeUndefined();
        expect(await store.holdsProcessLease(b!, 0)).toBe(true);
      });

      it('saves the checkpoint only over the one it read (compare-and-set), never blindly', async () => {
        expect(await store.processCheckpoint('mailer')).toBeUndefined();
        const a = await store.acquireProcessLease('mailer', 'instance-a', MINUTE);
        expect(await store.saveProcessCheckpoint(a!, undefined, 41n)).toBe(true);
        // A first save when one exists, or a save over a checkpoint that moved, writes nothing.
        expect(await store.saveProcessCheckpoint(a!, undefined, 40n)).toBe(false);
        expect(await store.saveProcessCheckpoint(a!, 41n, 42n)).toBe(true);
        expect(await store.saveProcessCheckpoint(a!, 41n, 50n)).toBe(false);
        expect(await store.processCheckpoint('mailer')).toBe(42n);
        await store.releaseProcessLease(a!);
        const b = await store.acquireProcessLease('mailer', 'instance-b', MINUTE);
        expect(b?.checkpoint).toBe(42n);
        // Released is released: the former holder's save is refused even over the right checkpoint.
        expect(await store.saveProcessCheckpoint(a!, 42n, 60n)).toBe(false);
        expect(await store.saveProcessCheckpoint(b!, 42n, 43n)).toBe(true);
        expect(await store.processCheckpoint('mailer')).toBe(43n);
      });
    });
  });
}
