import type { Projection } from '../../projections/projection';
import type { EventStore } from '../event-store/event-store.port';
import type {
  ProjectionFailure,
  ReadModelStore,
  ReadModelTarget,
} from '../read-model/read-model-store.port';
import { applyBatch } from './apply-batch';
import { schemaOf } from './projection-engine';
import { DocumentCache } from './unit-of-work';

export interface RebuildProgress {
  events: number;
  position: bigint;
  head: bigint;
  elapsedMs: number;
}

export interface RebuildResult {
  projection: string;
  generation: number;
  position: bigint;
  failure: ProjectionFailure | null;
}

/**
 * Rebuilds projections from the first event into new generations, beside the
 * ones being served, reading the log once for all of them. When the log has
 * been read to its end, each rebuilt generation is activated; a running
 * service notices, follows the new generation from where the rebuild stopped,
 * and switches its readers once it has caught up. A projection that fails is
 * not activated: the old read model stays in service.
 */
export async function rebuildProjections(
  eventStore: EventStore,
  store: ReadModelStore,
  projections: readonly Projection[],
  options: { batchSize?: number; onProgress?: (progress: RebuildProgress) => void } = {},
): Promise<RebuildResult[]> {
  const started = Date.now();
  const previous = await store.activeGenerations();
  const builds: Array<{
    projection: Projection;
    target: ReadModelTarget;
    handles: ReadonlySet<string>;
    skips: ReadonlySet<bigint>;
    cache: DocumentCache;
    position: bigint;
    failure: ProjectionFailure | null;
  }> = [];
  for (const projection of projections) {
    const generation = await store.createGeneration(projection.name, projection.version);
    await store.prepare(schemaOf(projection), generation);
    builds.push({
      projection,
      target: { projection: projection.name, generation },
      handles: new Set(projection.handles),
      skips: new Set((await store.skips(projection.name)).map((skip) => skip.position)),
      cache: new DocumentCache(60_000, true),
      position: 0n,
      failure: null,
    });
  }
  let head = await eventStore.headPosition();
  let after = 0n;
  let events = 0;
  for (;;) {
    const batch = await eventStore.readAll({ after, maxCount: options.batchSize ?? 5000 });
    if (batch.length === 0) break;
    for (const build of builds) {
      if (build.failure) continue;
      const result = await applyBatch(
        store,
        build.target,
        build.projection,
        build.handles,
        build.skips,
        build.cache,
        build.position,
        batch,
      );
      if (result.outcome === 'conflict') {
        throw new Error(
          `Generation ${build.target.generation} of ${build.projection.name} was written by someone else`,
        );
      }
      build.position = result.position;
      build.failure = result.failure;
    }
    after = batch[batch.length - 1].position;
    events += batch.length;
    if (after > head) head = after;
    options.onProgress?.({ events, position: after, head, elapsedMs: Date.now() - started });
  }
  const checkpoints = await store.listCheckpoints();
  const results: RebuildResult[] = [];
  for (const build of builds) {
    const name = build.projection.name;
    if (!build.failure) {
      await store.activate(build.target);
      // Keep the generation a running service may still be reading; drop the older ones.
      for (const old of checkpoints) {
        if (
          old.projection === name &&
          old.generation !== build.target.generation &&
          old.generation !== previous.get(name)
        ) {
          await store.dropGeneration(schemaOf(build.projection), old.generation);
        }
      }
    }
    results.push({
      projection: name,
      generation: build.target.generation,
      position: build.position,
      failure: build.failure,
    });
  }
  return results;
}
