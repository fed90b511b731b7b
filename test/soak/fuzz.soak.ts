import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fuzz, fuzzSeed } from '../support/fuzz';
import { soakBudgetMs } from '../support/soak';

/*
 * The fuzzer of test/http/fuzz.spec.ts for as long as the soak budget allows
 * (SOAK_SECONDS, `npm run soak`). Its figures land in .tmp/soak/fuzz.json and
 * in docs/security.md.
 */
const budgetMs = soakBudgetMs();

describe('fuzzing every route of the OpenAPI description (soak)', () => {
  it(
    'answers every bad request with a 4xx problem+json, no stack, nothing logged as an error, nothing appended',
    async () => {
      const seed = fuzzSeed();
      let report;
      try {
        report = await fuzz({ seed, maxRuns: Number.MAX_SAFE_INTEGER, budgetMs });
      } catch (error) {
        throw new Error(`fuzz soak with FUZZ_SEED=${seed} failed: ${(error as Error).message}`);
      }
      const line = `fuzz soak: seed ${report.seed}, ${report.requests} requests over ${report.operations} operations in ${Math.round(report.durationMs / 1000)} s; statuses ${JSON.stringify(report.byStatus)}; mutations ${JSON.stringify(report.byMutation)}`;
      console.log(line);
      mkdirSync(join('.tmp', 'soak'), { recursive: true });
      writeFileSync(join('.tmp', 'soak', 'fuzz.json'), `${JSON.stringify(report, null, 2)}\n`);
      expect(report.requests).toBeGreaterThan(0);
    },
    budgetMs + 180_000,
  );
});
