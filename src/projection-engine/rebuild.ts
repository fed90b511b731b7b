import type { Projection } from '../../projections/projection';
import type { EventStore, RecordedEvent } from '../event-store/event-store.port';
import { upcasters } from '../event-store/upcasting';
import type {
  ProjectionFailure,
  ReadModelStore,
  ReadModelTarget,
} from '../read-model/read-model-store.port';
import { schemaOf } from './projection-engine';
import { RebuildWriter } from './rebuild-writer';

export interface RebuildProgress {
  /** Events of the log covered so far (handled or not). */
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

export interface RebuildOptions {
  /** Log positions per page read. */
  pageSize?: number;
  /** A projection's changed documents are written (with its checkpoint) once this many are pending. */
  flushDocuments?: number;
  /** Documents kept in memory across all projections; the oldest written ones are dropped beyond it. */
  maxDocuments?: number;
  onProgress?: (progress: RebuildProgress) => void;
}

/**
 * Rebuilds projections from the first event into new generations, beside the
 * ones being served, reading the log once for all of them. When the log has
 * been read to its end, each rebuilt generation is activated; a running
 * service notices, follows the new generation from where the rebuild stopped,
 * and switches its readers once it has caught up. A projection that fails is
 * not activated: the old read model stays in service.
 *
 * Fast and bounded, without changing what gets built (the same `apply`, the
 * same documents as the live path; test/process/projections.spec.ts compares
 * them byte for byte):
 *   - the log is read in large pages, and only the event types some projection
 *     handles are parsed (`EventStore.readPage`);
 *   - each projection applies events to its documents in memory
 *     (`RebuildWriter`), so a document touched by many events is written once
 *     per flush, and a `put` of the very document it holds changes nothing;
 *   - a projection's pending documents are written with its checkpoint in one
 *     transaction once `flushDocuments` are pending, and at the end;
 *   - memory is bounded: beyond `maxDocuments`, the documents written longest
 *     ago are dropped from memory and read back from the store if needed again.
 */
export async function rebuildProjections(
  eventStore: EventStore,
  store: ReadModelStore,
  projections: readonly Projection[],
  options: RebuildOptions = {},
): Promise<RebuildResult[]> {
  const started = Date.now();
  const pageSize = options.pageSize ?? 2_000;
  // 10,000 went over the 300 MB bound at 1,000,000 events once a fifth projection came
  // (271-278 MB at 5,000, 286-320 MB at 10,000, in the same runs; bench/read-models.bench.ts).
  const flushDocuments = options.flushDocuments ?? 5_000;
  const maxDocuments = options.maxDocuments ?? 20_000;
  const previous = await store.activeGenerations();
  let head = await eventStore.headPosition();
  const perBuild = Math.ceil(maxDocuments / Math.max(1, projections.length));
  const builds: Array<{
    projection: Projection;
    target: ReadModelTarget;
    handles: ReadonlySet<string>;
    skips: ReadonlySet<bigint>;
    writer: RebuildWriter;
    /** Every event up to here has been applied in memory. */
    position: bigint;
    failure: ProjectionFailure | null;
    flushedFailure: boolean;
  }> = [];
  for (const projection of projections) {
    const generation = await store.createGeneration(projection.name, projection.version);
    // The indexes are built once the documents are in (below), not row by row.
    await store.prepare(schemaOf(projection), generation, { indexes: false });
    const target = { projection: projection.name, generation };
    builds.push({
      projection,
      target,
      handles: new Set(projection.handles),
      skips: new Set((await store.skips(projection.name)).map((skip) => skip.position)),
      writer: new RebuildWriter(store, target, projection.collections, {
        maxDocuments: perBuild,
        expectedDocuments: Number(head),
      }),
      position: 0n,
      failure: null,
      flushedFailure: false,
    });
  }
  const types = upcasters.storedTypes(projections.flatMap((p) => p.handles));
  let after = 0n;
  let events = 0;
  for (;;) {
    const page = await eventStore.readPage({ after, maxCount: pageSize, types });
    if (page.through <= after) break;
    // Event by event, each to every projection: an event is dropped as soon as it
    // is applied, so a page's events never outlive the young generation of the heap.
    for (const recorded of page.events) {
      const event = upcasters.upcast(recorded);
      for (const build of builds) {
        // Checked here, not in `applyEvent`: most (event, projection) pairs are not
        // handled, and an async call that does nothing still costs a promise and a tick.
        if (build.failure || !build.handles.has(event.type)) continue;
        if (build.skips.size > 0 && build.skips.has(event.position)) continue;
        build.failure = await applyEvent(build, event);
      }
    }
    for (const build of builds) {
      if (build.failure) {
        if (!build.flushedFailure) {
          build.flushedFailure = true;
          await build.writer.flush(build.position, build.failure);
        }
        continue;
      }
      build.position = page.through;
      if (build.writer.pending >= flushDocuments) {
        await build.writer.flush(build.position, null);
      } else if (build.writer.size > perBuild) {
        build.writer.dropOldest();
      }
    }
    after = page.through;
    events += page.scanned;
    if (after > head) head = after;
    options.onProgress?.({ events, position: after, head, elapsedMs: Date.now() - started });
  }
  for (const build of builds) {
    if (!build.failure) await build.writer.flush(build.position, null);
    await build.writer.settle();
    await store.prepare(schemaOf(build.projection), build.target.generation);
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

/**
 * Applies one (upcast) event, of a type it handles and not skipped, to one
 * projection in memory. An event whose `apply`
 * throws leaves no trace: the projection's position stays just before it and
 * the failure is answered.
 */
async function applyEvent(
  build: { projection: Projection; writer: RebuildWriter; position: bigint },
  event: RecordedEvent,
): Promise<ProjectionFailure | null> {
  const { projection, writer } = build;
  try {
    await projection.apply(event, writer);
    writer.keepEvent();
    return null;
  } catch (error) {
    writer.discardEvent();
    build.position = event.position - 1n;
    return {
      position: String(event.position),
      eventType: event.type,
      error: error instanceof Error ? error.message : String(error),
      at: new Date().toISOString(),
    };
  }
}
