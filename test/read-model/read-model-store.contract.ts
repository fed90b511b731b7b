import type {
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

    it('starts a new generation at position 0, without failure', async () => {
      expect(await store.checkpoint(target)).toEqual({
        projection: schema.projection,
        generation: target.generation,
        version: 1,
        position: 0n,
        failure: null,
      });
      expect(await store.createGeneration(schema.projection, 1)).toBe(target.generation + 1);
    });

    it('commits documents and the checkpoint together', async () => {
      const outcome = await store.commit(target, {
        expected: 0n,
        position: 7n,
        changes: [person('f', 'u1', 'Ann'), { collection: 'totals', id: 'f', doc: { n: 1 } }],
        failure: null,
      });
      expect(outcome).toBe('committed');
      expect((await store.checkpoint(target))?.position).toBe(7n);
      expect(await store.get(target, 'totals', 'f')).toEqual({ n: 1 });
      expect(await store.get(target, 'people', 'f/u1')).toMatchObject({ name: 'Ann' });
    });

    it('refuses a commit whose expected checkpoint moved, and writes none of it', async () => {
      await store.commit(target, { expected: 0n, position: 5n, changes: [], failure: null });
      const outcome = await store.commit(target, {
        expected: 0n,
        position: 9n,
        changes: [{ collection: 'totals', id: 'f', doc: { n: 99 } }],
        failure: null,
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
        failure: null,
      });
      await store.commit(target, {
        expected: 1n,
        position: 2n,
        changes: [
          { collection: 'totals', id: 'a', doc: null },
          { collection: 'totals', id: 'b', doc: { n: 3, nested: { list: [1, 'x', null] } } },
        ],
        failure: null,
      });
      expect(await store.scan(target, 'totals')).toEqual([
        { id: 'b', doc: { n: 3, nested: { list: [1, 'x', null] } } },
      ]);
      expect(await store.getMany(target, 'totals', ['a', 'b', 'c'])).toEqual(
        new Map([['b', { n: 3, nested: { list: [1, 'x', null] } }]]),
      );
    });

    it('stores a failure with the checkpoint and clears it on the next commit', async () => {
      const failure = {
        position: '4',
        eventType: 'Bad',
        error: 'boom',
        at: '2026-01-01T00:00:00Z',
      };
      await store.commit(target, { expected: 0n, position: 3n, changes: [], failure });
      expect((await store.checkpoint(target))?.failure).toEqual(failure);
      await store.commit(target, { expected: 3n, position: 4n, changes: [], failure: null });
      expect((await store.checkpoint(target))?.failure).toBeNull();
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
        failure: null,
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

    it('records skips once each, in position order', async () => {
      await store.recordSkip('p', 12n, 'bad data');
      await store.recordSkip('p', 3n, 'first');
      await store.recordSkip('p', 12n, 'again');
      expect((await store.skips('p')).map((s) => [s.position, s.note])).toEqual([
        [3n, 'first'],
        [12n, 'bad data'],
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
