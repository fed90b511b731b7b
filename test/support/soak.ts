/**
 * The time a soak test may run, in milliseconds: SOAK_SECONDS (set by
 * `npm run soak`, 600 by default), so that every *.soak.ts honours one budget.
 */
export function soakBudgetMs(): number {
  const raw = process.env.SOAK_SECONDS ?? '600';
  const seconds = Number(raw);
  if (!/^\d+$/.test(raw) || seconds < 1)
    throw new Error(`SOAK_SECONDS: "${raw}" is not a number of seconds`);
  return seconds * 1000;
}
