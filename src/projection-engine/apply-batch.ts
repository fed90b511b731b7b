import type { Projection } from '../../projections/projection';
import type { RecordedEvent } from '../event-store/event-store.port';
import { upcasters } from '../event-store/upcasting';
import type {
  ProjectionFailure,
  ReadModelStore,
  ReadModelTarget,
} from '../read-model/read-model-store.port';
import { DocumentCache, UnitOfWork } from './unit-of-work';

export interface BatchOutcome {
  outcome: 'committed' | 'conflict';
  /** The checkpoint after the batch: its last event, or the one before a failing event. */
  position: bigint;
  failure: ProjectionFailure | null;
  applied: number;
}

/**
 * Applies a batch of log events to one projection and commits its writes with
 * the checkpoint, in one transaction. Events the projection does not handle,
 * and events an operator skipped, only move the checkpoint. An event whose
 * `apply` throws stops the batch there: what came before it is committed, and
 * the failure (position, type, message) is stored with the checkpoint.
 */
export async function applyBatch(
  store: ReadModelStore,
  target: ReadModelTarget,
  projection: Projection,
  handles: ReadonlySet<string>,
  skips: ReadonlySet<bigint>,
  cache: DocumentCache,
  expected: bigint,
  events: readonly RecordedEvent[],
  now: () => string = () => new Date().toISOString(),
): Promise<BatchOutcome> {
  const uow = new UnitOfWork((collection, id) => store.get(target, collection, id), cache);
  let position = expected;
  let failure: ProjectionFailure | null = null;
  let applied = 0;
  for (const event of events) {
    if (event.position <= position) continue;
    if (handles.has(event.type) && !skips.has(event.position)) {
      try {
        await projection.apply(upcasters.upcast(event), uow);
        uow.keepEvent();
        applied++;
      } catch (error) {
        uow.discardEvent();
        failure = {
          position: String(event.position),
          eventType: event.type,
          error: error instanceof Error ? error.message : String(error),
          at: now(),
        };
        break;
      }
    }
    position = event.position;
  }
  const changes = uow.changes();
  const outcome = await store.commit(target, { expected, position, changes, failure });
  if (outcome === 'committed') cache.absorb(changes);
  else cache.clear();
  return { outcome, position, failure, applied };
}
