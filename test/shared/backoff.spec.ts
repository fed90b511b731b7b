import { backoffDelay } from '../../src/shared/backoff';

describe('backoffDelay: the one back-off of the service', () => {
  it('doubles from the first delay at each attempt, up to the cap', () => {
    const policy = { firstMs: 100, maxMs: 1_000 };
    expect([1, 2, 3, 4, 5, 6].map((attempt) => backoffDelay(attempt, policy))).toEqual([
      100, 200, 400, 800, 1_000, 1_000,
    ]);
    // A huge attempt number neither overflows nor passes the cap.
    expect(backoffDelay(10_000, policy)).toBe(1_000);
  });

  it("draws a full jitter between 0 and the delay, and a fraction's within ± of it", () => {
    expect(backoffDelay(3, { firstMs: 5, maxMs: 40, jitter: 'full' }, () => 0)).toBe(0);
    expect(backoffDelay(3, { firstMs: 5, maxMs: 40, jitter: 'full' }, () => 0.999)).toBe(19);
    const mail = { firstMs: 1_000, maxMs: 300_000, jitter: 0.2 };
    expect(backoffDelay(2, mail, () => 0)).toBe(1_600);
    expect(backoffDelay(2, mail, () => 1)).toBe(2_400);
  });
});
