import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { requireBuild } from '../support/processes';
import {
  guaranteesSeed,
  guaranteesSoak,
  stopGuaranteesSoaks,
  summaryLine,
} from '../support/guarantees-soak';
import { soakBudgetMs } from '../support/soak';

/*
 * The soak of test/process/guarantees-soak.spec.ts for as long as the soak
 * budget allows (SOAK_SECONDS, `npm run soak`): rounds of a mixed workload on
 * two instances, SIGKILLs, restarts and the checks of issue 11 after each.
 * Its figures land in .tmp/soak/guarantees.json.
 */
const budgetMs = soakBudgetMs();
const SEED = guaranteesSeed();

describe(`the guarantees hold through kills and restarts (soak, seed ${SEED})`, () => {
  beforeAll(() => requireBuild());
  // A run cut short by the test's timeout leaves no instance behind.
  afterAll(() => stopGuaranteesSoaks());

  it(
    'every round ends with each command applied once, S1 and S2, rebuilt read models and each email sent once',
    async () => {
      const report = await guaranteesSoak({
        seed: SEED,
        maxRounds: Number.MAX_SAFE_INTEGER,
        budgetMs,
        clients: 8,
        roundMs: { min: 4_000, max: 12_000 },
        killsPerRound: { min: 1, max: 3 },
        log: (line) => console.log(line),
      });
      const line = summaryLine(report);
      console.log(line);
      for (const refused of report.refusedRetries) console.log(`refused on retry: ${refused}`);
      mkdirSync(join('.tmp', 'soak'), { recursive: true });
      writeFileSync(
        join('.tmp', 'soak', 'guarantees.json'),
        `${JSON.stringify({ summary: line, ...report }, null, 2)}\n`,
      );
      expect(report.rounds).toBeGreaterThan(0);
      expect(report.kills).toBeGreaterThan(0);
    },
    budgetMs + 300_000,
  );
});
