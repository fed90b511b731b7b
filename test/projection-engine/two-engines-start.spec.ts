import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ALL_PROJECTIONS } from '../../projections';
import { SqliteEventStore } from '../../src/event-store/sqlite-event-store';
import { ProjectionEngine } from '../../src/projection-engine/projection-engine';
import { SqliteReadModelStore } from '../../src/read-model/sqlite-read-model-store';

/*
 * Two instances starting at once on an empty read-model store (a fresh
 * deployment of two, or the guarantees soak) must agree on one generation per
 * projection. Before, each could create and activate its own, and the second
 * could drop the first one's generation while the first was starting on it:
 * "No checkpoint for Projection … (generation 1)" and the start failed.
 */
const quiet = { log: () => undefined, warn: () => undefined, error: () => undefined };

describe('two projection engines starting together on an empty store', () => {
  it('serve the same generation of every projection, and both start', async () => {
    for (let round = 0; round < 5; round++) {
      const dir = mkdtempSync(join(tmpdir(), 'mfa-two-engines-'));
      const log = new SqliteEventStore(join(dir, 'events.sqlite'));
      const stores = [0, 1].map(() => new SqliteReadModelStore(join(dir, 'readmodels.sqlite')));
      const engines = stores.map(
        (store) =>
          new ProjectionEngine(log, store, { projections: ALL_PROJECTIONS, logger: quiet }),
      );
      try {
        // Started in either order: the interleaving of their awaits differs.
        await Promise.all(
          round % 2 === 0
            ? engines.map((e) => e.start())
            : [...engines].reverse().map((e) => e.start()),
        );
        const generations = engines.map((engine) =>
          Object.fromEntries(engine.health(0n).projections.map((p) => [p.name, p.generation])),
        );
        expect(generations[1]).toEqual(generations[0]);
        const active = Object.fromEntries(await stores[0].activeGenerations());
        expect(generations[0]).toEqual(active);
        // Each served generation has its checkpoint; no other generation is left.
        const checkpoints = await stores[0].listCheckpoints();
        expect(checkpoints.map((c) => `${c.projection}#${c.generation}`).sort()).toEqual(
          Object.entries(active)
            .map(([name, generation]) => `${name}#${generation}`)
            .sort(),
        );
      } finally {
        await Promise.all(engines.map((engine) => engine.stop()));
        await Promise.all(stores.map((store) => store.close()));
        await log.close();
        rmSync(dir, { recursive: true, force: true });
      }
    }
  });
});
