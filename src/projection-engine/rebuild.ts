import type { Projection } from './projection';
import type { EventStore } from '../event-store/event-store.port';
import { upcasters } from '../event-store/upcasting';
import type {
  QuarantinedEvent,
  ReadModelStore,
  ReadModelTarget,
} from '../read-model/read-model-store.port';
import { evolveOver } from './evolve';
import { schemaOf } from './projection-engine';
import { quarantineRecord, readableEvent } from './quarantine';
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
  /** The log's end when the rebuild read it: every event up to here was applied or quarantined. */
  position: bigint;
  /** The events this generation quarantined, by position. */
  quarantined: QuarantinedEvent[];
  /**
   * Those of them that the served generation had applied: a sign that the code
   * went wrong, not the events. The rebuilt generation is then not activated.
   */
  regressions: QuarantinedEvent[];
  activated: boolean;
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
 * and switches its readers once it has caught up.
 *
 * An event a projection cannot read or apply is quarantined in the new
 * generation, as the live path does, and the rebuild goes on. So a rebuild
 * is how a projection replays a quarantined event once the code (or an
 * upcaster, or the stored row) is fixed: it applies the event in log order,
 * or quarantines it again. A rebuilt generation that quarantined an event the
 * served generation had applied is not activated: the old read model stays in
 * service. A failing store fails the rebuild.
 *
 * Fast and bounded, without changing what gets built (the same `evolve`, the
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
    quarantined: QuarantinedEvent[];
    /** Quarantined since the last flush: written with the next checkpoint. */
    unflushed: QuarantinedEvent[];
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
      quarantined: [],
      unflushed: [],
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
    // Handled types are checked here: most (event, projection) pairs are not handled.
    for (const recorded of page.events) {
      const event = readableEvent(recorded);
      const type = typeof event === 'string' ? recorded.type : event.type;
      for (const build of builds) {
        if (!build.handles.has(type)) continue;
        if (build.skips.size > 0 && build.skips.has(recorded.position)) continue;
        let reason: string;
        if (typeof event === 'string') {
          reason = event;
        } else {
          // Synchronous unless a dropped document must be read back: no promise per event.
          let evolved = evolveOver(build.projection, event, build.writer);
          if (evolved instanceof Promise) evolved = await evolved;
          if ('changes' in evolved) {
            build.writer.apply(evolved.changes);
            continue;
          }
          reason = evolved.reason;
        }
        const record = quarantineRecord(
          build.projection.name,
          build.target.generation,
          recorded,
          reason,
          new Date().toISOString(),
        );
        build.quarantined.push(record);
        build.unflushed.push(record);
      }
    }
    for (const build of builds) {
      build.position = page.through;
      if (build.writer.pending >= flushDocuments || build.unflushed.length >= flushDocuments) {
        await build.writer.flush(build.position, build.unflushed.splice(0));
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
    await build.writer.flush(build.position, build.unflushed.splice(0));
    await build.writer.settle();
    await store.prepare(schemaOf(build.projection), build.target.generation);
  }

  const checkpoints = await store.listCheckpoints();
  const served = await store.quarantined();
  const results: RebuildResult[] = [];
  for (const build of builds) {
    const name = build.projection.name;
    const regressions = regressionsOf(build, previous.get(name), checkpoints, served);
    const activated = regressions.length === 0;
    if (activated) {
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
      quarantined: build.quarantined,
      regressions,
      activated,
    });
  }
  return results;
}

/**
 * The events the rebuilt generation quarantined that the served generation
 * had applied: up to its checkpoint, and not quarantined there.
 */
function regressionsOf(
  build: { quarantined: QuarantinedEvent[]; projection: Projection },
  servedGeneration: number | undefined,
  checkpoints: ReadonlyArray<{ projection: string; generation: number; position: bigint }>,
  quarantined: readonly QuarantinedEvent[],
): QuarantinedEvent[] {
  if (servedGeneration === undefined || build.quarantined.length === 0) return [];
  const name = build.projection.name;
  const reached = checkpoints.find(
    (c) => c.projection === name && c.generation === servedGeneration,
  )?.position;
  if (reached === undefined) return [];
  const alsoThere = new Set(
    quarantined
      .filter((q) => q.consumer === name && q.generation === servedGeneration)
      .map((q) => q.position),
  );
  return build.quarantined.filter((q) => q.position <= reached && !alsoThere.has(q.position));
}
