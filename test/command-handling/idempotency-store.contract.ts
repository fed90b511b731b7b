import { randomUUID } from 'node:crypto';
import type {
  IdempotencyRecord,
  IdempotencyStore,
  IdempotencyTimings,
} from '../../src/http/idempotency-store.port';

/**
 * The behaviour every idempotency store adapter must have (SQLite always,
 * MongoDB when MONGODB_URL is set). `open` gives a store on fresh storage and
 * `openAnother` a second connection to the same storage: what another
 * instance of the service sees. Both run on the test's clock.
 */
export interface IdempotencyStoreUnderTest {
  store: IdempotencyStore;
  openAnother(): Promise<IdempotencyStore>;
  dispose(): Promise<void>;
}

const RETENTION_MS = 24 * 60 * 60 * 1000;
const CLAIM_TIMEOUT_MS = 30_000;

export function idempotencyStoreContract(
  name: string,
  open: (timings: IdempotencyTimings) => Promise<IdempotencyStoreUnderTest>,
): void {
  describe(`${name} idempotency store contract`, () => {
    let subject: IdempotencyStoreUnderTest;
    let store: IdempotencyStore;
    let now: number;
    const others: IdempotencyStore[] = [];
    const another = async () => {
      const other = await subject.openAnother();
      others.push(other);
      return other;
    };

    beforeEach(async () => {
      now = Date.now();
      subject = await open({
        retentionMs: RETENTION_MS,
        claimTimeoutMs: CLAIM_TIMEOUT_MS,
        now: () => now,
      });
      store = subject.store;
    });
    afterEach(async () => {
      await Promise.all(others.splice(0).map((other) => other.close()));
      await subject.dispose();
    });

    const scope = () => `scope-${randomUUID()}`;
    const answer = (overrides: Partial<IdempotencyRecord> = {}): IdempotencyRecord => ({
      fingerprint: 'fp-1',
      status: 201,
      body: { position: '42', name: 'Zoë Ångström', nested: [1, { b: null }] },
      contentType: 'application/json; charset=utf-8',
      ...overrides,
    });

    it('claims a free scope, then answers the kept record as it was stored', async () => {
      const s = scope();
      const claim = await store.claim(s, 'fp-1');
      expect(claim).toEqual({ state: 'claimed', claimId: expect.any(String) });
      await store.complete(s, answer());
      expect(await store.claim(s, 'fp-1')).toEqual({ state: 'answered', record: answer() });
      // Whatever fingerprint the retry has: the caller compares.
      expect(await store.claim(s, 'fp-2')).toEqual({ state: 'answered', record: answer() });
    });

    it('a scope held by a running request is in progress, for this instance and another', async () => {
      const s = scope();
      await store.claim(s, 'fp-1');
      expect(await store.claim(s, 'fp-1')).toEqual({ state: 'in-progress', fingerprint: 'fp-1' });
      const other = await another();
      expect(await other.claim(s, 'fp-2')).toEqual({ state: 'in-progress', fingerprint: 'fp-1' });
      // The answer kept by one instance is the other's answer.
      await store.complete(s, answer({ status: 409, contentType: 'application/problem+json' }));
      expect(await other.claim(s, 'fp-1')).toEqual({
        state: 'answered',
        record: answer({ status: 409, contentType: 'application/problem+json' }),
      });
    });

    it('concurrent claims of one scope from two instances: exactly one is granted', async () => {
      const other = await another();
      for (let round = 0; round < 5; round++) {
        const s = scope();
        const claims = await Promise.all(
          Array.from({ length: 10 }, (_, i) => (i % 2 ? other : store).claim(s, 'fp-1')),
        );
        expect(claims.filter((c) => c.state === 'claimed')).toHaveLength(1);
        expect(claims.filter((c) => c.state === 'in-progress')).toHaveLength(9);
      }
    });

    it('the first answer is kept: a later complete changes nothing and answers the first', async () => {
      const s = scope();
      await store.claim(s, 'fp-1');
      expect(await store.complete(s, answer({ body: { first: true } }))).toEqual(
        answer({ body: { first: true } }),
      );
      expect(await store.complete(s, answer({ body: { first: false }, status: 500 }))).toEqual(
        answer({ body: { first: true } }),
      );
      expect(await store.claim(s, 'fp-1')).toEqual({
        state: 'answered',
        record: answer({ body: { first: true } }),
      });
    });

    it('a run whose expired claim was taken over, answering last, is given the answer kept first', async () => {
      const s = scope();
      expect((await store.claim(s, 'fp-1')).state).toBe('claimed');
      now += CLAIM_TIMEOUT_MS;
      const other = await another();
      expect((await other.claim(s, 'fp-1')).state).toBe('claimed');
      const success = answer({ status: 200, body: { position: '7' } });
      const refusal = answer({
        status: 409,
        body: { type: '/problems/license-exhausted', status: 409 },
        contentType: 'application/problem+json',
      });
      expect(await other.complete(s, success)).toEqual(success);
      expect(await store.complete(s, refusal)).toEqual(success);
      expect(await store.claim(s, 'fp-1')).toEqual({ state: 'answered', record: success });
    });

    it('a run that answers first while its expired claim is held by another keeps its answer', async () => {
      const s = scope();
      await store.claim(s, 'fp-1');
      now += CLAIM_TIMEOUT_MS;
      const other = await another();
      expect((await other.claim(s, 'fp-1')).state).toBe('claimed');
      const refusal = answer({ status: 409, contentType: 'application/problem+json' });
      expect(await store.complete(s, refusal)).toEqual(refusal);
      expect(await other.complete(s, answer())).toEqual(refusal);
      expect(await other.claim(s, 'fp-1')).toEqual({ state: 'answered', record: refusal });
    });

    it('release frees the scope for the next request; only the holder releases', async () => {
      const s = scope();
      const first = await store.claim(s, 'fp-1');
      if (first.state !== 'claimed') throw new Error('not claimed');
      await store.release(s, 'someone-else');
      expect((await store.claim(s, 'fp-1')).state).toBe('in-progress');
      await store.release(s, first.claimId);
      const next = await (await another()).claim(s, 'fp-2');
      expect(next.state).toBe('claimed');
      // A release after the answer was kept leaves the answer.
      await store.complete(s, answer());
      if (next.state === 'claimed') await store.release(s, next.claimId);
      expect((await store.claim(s, 'fp-1')).state).toBe('answered');
    });

    it('a claim left by an instance that died expires after the claim timeout', async () => {
      const s = scope();
      await (await another()).claim(s, 'fp-1');
      now += CLAIM_TIMEOUT_MS - 1;
      expect((await store.claim(s, 'fp-1')).state).toBe('in-progress');
      now += 1;
      const taken = await store.claim(s, 'fp-1');
      expect(taken.state).toBe('claimed');
      expect((await store.claim(s, 'fp-1')).state).toBe('in-progress');
    });

    it('an answer is kept for the retention period, then the key runs anew', async () => {
      const s = scope();
      await store.claim(s, 'fp-1');
      now += 5_000;
      await store.complete(s, answer());
      // Retention counts from the answer, not from the claim.
      now += RETENTION_MS - 1;
      expect((await store.claim(s, 'fp-1')).state).toBe('answered');
      now += 1;
      expect((await store.claim(s, 'fp-2')).state).toBe('claimed');
      // A dead answer gives way to the new one, which complete answers.
      expect(await store.complete(s, answer({ fingerprint: 'fp-2' }))).toEqual(
        answer({ fingerprint: 'fp-2' }),
      );
      expect(await store.claim(s, 'fp-1')).toEqual({
        state: 'answered',
        record: answer({ fingerprint: 'fp-2' }),
      });
    });

    it('scopes are independent', async () => {
      const [a, b] = [scope(), scope()];
      await store.claim(a, 'fp-a');
      expect((await store.claim(b, 'fp-b')).state).toBe('claimed');
      await store.complete(b, answer({ fingerprint: 'fp-b' }));
      expect(await store.claim(a, 'fp-a')).toEqual({ state: 'in-progress', fingerprint: 'fp-a' });
    });
  });
}
