import { randomBytes } from 'node:crypto';
import type { RateLimitStore } from '../../src/http/rate-limit-store';

/**
 * The contract both rate-limit stores keep (SQLite here, MongoDB when
 * MONGODB_URL is set): counts per key in fixed windows, shared by every
 * instance that opens the same backing store (ADR 0016).
 */
export function rateLimitStoreContract(name: string, open: () => Promise<RateLimitStore>): void {
  describe(`${name} rate-limit store`, () => {
    let first: RateLimitStore;
    let second: RateLimitStore;
    // Fresh counter names per run: a shared MongoDB keeps counts between runs.
    const run = randomBytes(4).toString('hex');
    const limit = { points: 3, windowSeconds: 60 };

    beforeAll(async () => {
      first = await open();
      second = await open();
    });
    afterAll(async () => {
      await first?.close();
      await second?.close();
    });

    it('allows `points` per key and window, then refuses with the seconds left in the window', async () => {
      const counter = first.counter(`allow-${run}`, limit);
      const decisions = [];
      for (let i = 0; i < 5; i++) decisions.push(await counter.take('k'));
      expect(decisions.map((d) => d.allowed)).toEqual([true, true, true, false, false]);
      expect(decisions[3].retryAfterSeconds).toBeGreaterThanOrEqual(1);
      expect(decisions[3].retryAfterSeconds).toBeLessThanOrEqual(60);
      expect((await counter.take('other key')).allowed).toBe(true);
    });

    it('keeps the keys of different counters apart', async () => {
      const a = first.counter(`apart-a-${run}`, limit);
      const b = first.counter(`apart-b-${run}`, limit);
      for (let i = 0; i < 3; i++) await a.take('k');
      expect((await a.take('k')).allowed).toBe(false);
      expect((await b.take('k')).allowed).toBe(true);
    });

    it('takes back what was given back', async () => {
      const counter = first.counter(`give-${run}`, limit);
      for (let i = 0; i < 3; i++) expect((await counter.take('k')).allowed).toBe(true);
      await counter.giveBack('k');
      expect((await counter.take('k')).allowed).toBe(true);
      expect((await counter.take('k')).allowed).toBe(false);
    });

    it('shares one count between two instances on the same store', async () => {
      const mine = first.counter(`shared-${run}`, limit);
      const theirs = second.counter(`shared-${run}`, limit);
      expect((await mine.take('k')).allowed).toBe(true);
      expect((await theirs.take('k')).allowed).toBe(true);
      expect((await mine.take('k')).allowed).toBe(true);
      expect((await theirs.take('k')).allowed).toBe(false);
    });

    it('lets exactly `points` of a concurrent burst through', async () => {
      const mine = first.counter(`burst-${run}`, { points: 10, windowSeconds: 60 });
      const theirs = second.counter(`burst-${run}`, { points: 10, windowSeconds: 60 });
      const decisions = await Promise.all(
        Array.from({ length: 40 }, (_, i) => (i % 2 ? mine : theirs).take('k')),
      );
      expect(decisions.filter((d) => d.allowed)).toHaveLength(10);
    });

    it('once over the limit, a counter that blocks in memory keeps refusing', async () => {
      const counter = first.counter(`memory-${run}`, limit, { blockInMemory: true });
      for (let i = 0; i < 3; i++) expect((await counter.take('k')).allowed).toBe(true);
      for (let i = 0; i < 5; i++) expect((await counter.take('k')).allowed).toBe(false);
    });
  });
}
