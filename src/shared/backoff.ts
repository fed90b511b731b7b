/**
 * How long to wait before retry number `attempt` (1 for the first retry), in
 * milliseconds: `firstMs` doubled at every attempt, capped at `maxMs`. Jitter
 * spreads retries that failed together so that they do not retry together:
 * `'full'` draws the wait uniformly from 0 to the delay (AWS's "full jitter",
 * for writers racing on one stream), a fraction `f` draws it within ±f of the
 * delay (for work that should still wait about that long). Pure but for the
 * random draw, which `random` may replace in tests.
 *
 * The one back-off of the service: the command handler's retries on a
 * concurrency conflict, the process managers' and projections' retries on a
 * failing store, the mailer's retries of a refused message.
 */
export function backoffDelay(
  attempt: number,
  policy: { firstMs: number; maxMs: number; jitter?: 'full' | number },
  random: () => number = Math.random,
): number {
  // 2^20 already passes any cap: the exponent stops there rather than overflow.
  const exponential = policy.firstMs * 2 ** Math.min(Math.max(attempt - 1, 0), 20);
  const delay = Math.min(policy.maxMs, exponential);
  const { jitter } = policy;
  if (jitter === undefined || jitter === 0) return delay;
  if (jitter === 'full') return Math.floor(random() * delay);
  return Math.round(delay * (1 - jitter + 2 * jitter * random()));
}
