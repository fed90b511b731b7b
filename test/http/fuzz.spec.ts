import { fuzz, fuzzSeed } from '../support/fuzz';

/*
 * The generated fuzzer (test/support/fuzz.ts) for a short, seeded run in the
 * normal suite: a few hundred bad requests over every route of /openapi.json.
 * `npm run soak` runs it for longer. Replay a run with FUZZ_SEED=<seed>.
 */
describe('fuzzing every route of the OpenAPI description', () => {
  it('answers every bad request with a 4xx problem+json, no stack, nothing logged as an error, nothing appended', async () => {
    const seed = fuzzSeed();
    let report;
    try {
      report = await fuzz({ seed, maxRuns: 400, budgetMs: 25_000 });
    } catch (error) {
      throw new Error(`fuzz run with FUZZ_SEED=${seed} failed: ${(error as Error).message}`);
    }
    console.log(
      `fuzz: seed ${report.seed}, ${report.requests} requests over ${report.operations} operations in ${report.durationMs} ms; statuses ${JSON.stringify(report.byStatus)}`,
    );
    expect(report.requests).toBeGreaterThan(50);
  }, 120_000);
});
