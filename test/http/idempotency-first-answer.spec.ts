import type { CallHandler, ExecutionContext } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { firstValueFrom, from, Observable } from 'rxjs';
import { StoredResponse, IdempotencyInterceptor } from '../../src/http/idempotency';
import type { IdempotencyTimings } from '../../src/http/idempotency-store.port';
import { ProblemException, problemFromDomainError } from '../../src/http/problem';
import { SqliteIdempotencyStore } from '../../src/http/sqlite-idempotency-store';
import { DomainError } from '../../src/shared/domain-error';
import { tempDir } from '../support/harness';

/**
 * Every retry of a key gets the first answer (API.md, Commands), even when two
 * runs of one key overlap: the first run is held past its claim's expiry, a
 * second run claims the key and answers, then the first run answers too.
 *
 * Driven at the interceptor with the real SQLite store, not over HTTP: the
 * claim expires on the store's own clock (IdempotencyTimings.now, wall time in
 * the service), which the service's injected TestClock does not drive.
 */
describe('Idempotency-Key: overlapping runs of one key all answer the kept first answer', () => {
  const CLAIM_TIMEOUT_MS = 30_000;
  let dir: string;
  let now: number;
  let store: SqliteIdempotencyStore;
  let interceptor: IdempotencyInterceptor;

  beforeEach(() => {
    dir = tempDir('mfa-idem-first-');
    now = Date.now();
    const timings: IdempotencyTimings = {
      retentionMs: 24 * 3600_000,
      claimTimeoutMs: CLAIM_TIMEOUT_MS,
      now: () => now,
    };
    store = new SqliteIdempotencyStore(join(dir, 'state.sqlite'), timings);
    interceptor = new IdempotencyInterceptor(store, new Reflector());
  });
  afterEach(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** One PUT with the same key, caller, path and body each time: the same scope and fingerprint. */
  function contextOfRequest(seats = 5): ExecutionContext {
    const request = {
      method: 'PUT',
      url: '/v1/firms/acme/mfa/licenses',
      headers: { 'idempotency-key': 'key-1' },
      params: { firmId: 'acme' },
      body: { seats },
      principal: { role: 'firm-admin', id: 'admin-1', firm: 'acme' },
    };
    const handler = function putLicenses() {};
    return {
      switchToHttp: () => ({ getRequest: () => request }),
      getHandler: () => handler,
    } as unknown as ExecutionContext;
  }

  interface ClientAnswer {
    status: number;
    body: unknown;
  }

  /** What the client receives: the route's value (200 for a PUT), a kept answer, or a refusal. */
  async function answerOf(answer: Observable<unknown>): Promise<ClientAnswer> {
    try {
      return { status: 200, body: await firstValueFrom(answer) };
    } catch (error) {
      if (error instanceof StoredResponse) {
        return { status: error.record.status, body: error.record.body };
      }
      if (error instanceof ProblemException) {
        return { status: error.problem.status, body: error.problem };
      }
      if (error instanceof DomainError) {
        const body = problemFromDomainError(error);
        return { status: body.status, body };
      }
      throw error;
    }
  }

  /** A command run whose outcome the test decides, when it decides. */
  function heldRun() {
    let settle!: (outcome: { value: unknown } | { error: unknown }) => void;
    const outcome = new Promise<{ value: unknown } | { error: unknown }>((resolve) => {
      settle = resolve;
    });
    const next: CallHandler = {
      handle: () =>
        from(
          outcome.then((o) => {
            if ('error' in o) throw o.error;
            return o.value;
          }),
        ),
    };
    return { next, settle };
  }

  const refusal = () =>
    new DomainError('license-exhausted', 'No seat is free.', 'conflict', { seats: 5 });
  const success = { position: '7', seats: 5 };

  it.each([
    ['the first run refuses after the second succeeded', 'refuses'],
    ['the first run succeeds after the second refused', 'succeeds'],
  ])('%s: both clients and a third retry get the kept answer', async (_title, firstOutcome) => {
    // Run 1 claims the key, then is held past its claim's expiry.
    const run1 = heldRun();
    const answer1 = answerOf(interceptor.intercept(contextOfRequest(), run1.next));
    await Promise.resolve();
    now += CLAIM_TIMEOUT_MS;

    // Run 2, same key, claims the expired scope and answers first: its answer is kept.
    const run2 = heldRun();
    const answer2 = answerOf(interceptor.intercept(contextOfRequest(), run2.next));
    run2.settle(firstOutcome === 'refuses' ? { value: success } : { error: refusal() });
    const second = await answer2;

    // Run 1 answers last, with the other outcome.
    run1.settle(firstOutcome === 'refuses' ? { error: refusal() } : { value: success });
    const first = await answer1;

    const third = await answerOf(
      interceptor.intercept(contextOfRequest(), {
        handle: () => {
          throw new Error('a retry of an answered key must not run the command');
        },
      }),
    );
    expect(second.status).toBe(firstOutcome === 'refuses' ? 200 : 409);
    expect(third).toEqual(second);
    expect(first).toEqual(second);
  });

  it('a run whose expired claim went to another request under the key answers its own outcome', async () => {
    const run1 = heldRun();
    const answer1 = answerOf(interceptor.intercept(contextOfRequest(5), run1.next));
    await Promise.resolve();
    now += CLAIM_TIMEOUT_MS;
    const run2 = heldRun();
    const answer2 = answerOf(interceptor.intercept(contextOfRequest(6), run2.next));
    run2.settle({ value: { position: '8', seats: 6 } });
    expect(await answer2).toEqual({ status: 200, body: { position: '8', seats: 6 } });

    run1.settle({ error: refusal() });
    // Not the other request's answer: this one was refused.
    expect(await answer1).toEqual({ status: 409, body: problemFromDomainError(refusal()) });
    const retry = await answerOf(
      interceptor.intercept(contextOfRequest(5), {
        handle: () => {
          throw new Error('a retry of a key in use must not run the command');
        },
      }),
    );
    expect(retry.status).toBe(422);
  });
});
