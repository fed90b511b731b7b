import type { Projection } from './projection';
import type { RecordedEvent } from '../event-store/event-store.port';
import type {
  QuarantinedEvent,
  ReadModelStore,
  ReadModelTarget,
} from '../read-model/read-model-store.port';
import { evolveOver } from './evolve';
import { quarantineRecord, readableEvent } from './quarantine';
import { BatchDocuments, DocumentCache } from './unit-of-work';

export interface BatchOutcome {
  outcome: 'committed' | 'conflict';
  /** The checkpoint after the batch: its last event. */
  position: bigint;
  /** Events of the batch this projection passed over, committed with the checkpoint. */
  quarantined: QuarantinedEvent[];
  applied: number;
}

/**
 * Applies a batch of log events to one projection and commits its changes,
 * the events it quarantined and the checkpoint, in one transaction. Events the
 * projection does not handle (any type it does not know) and events an
 * operator skipped only move the checkpoint. An event that cannot be read or
 * upcast, or whose `evolve` throws, is quarantined (none of its changes kept)
 * and the batch goes on (DESIGN §6). A read-model store failure while loading
 * a document is thrown: nothing of the batch is committed and the runner
 * retries it.
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
  const documents = new BatchDocuments(
    (collection, id) => store.get(target, collection, id),
    cache,
  );
  let position = expected;
  const quarantined: QuarantinedEvent[] = [];
  let applied = 0;
  for (const recorded of events) {
    if (recorded.position <= position) continue;
    position = recorded.position;
    const event = readableEvent(recorded);
    if (!handles.has(typeof event === 'string' ? recorded.type : event.type)) continue;
    if (skips.has(position)) continue;
    const evolved =
      typeof event === 'string'
        ? { reason: event }
        : await evolveOver(projection, event, documents);
    if ('changes' in evolved) {
      documents.keep(evolved.changes);
      applied++;
    } else {
      const record = quarantineRecord(
        projection.name,
        target.generation,
        recorded,
        evolved.reason,
        now(),
      );
      quarantined.push(record);
    }
  }
  const changes = documents.changes();
  const outcome = await store.commit(target, { expected, position, changes, quarantined });
  if (outcome === 'committed') documents.committed();
  else cache.clear();
  return { outcome, position, quarantined, applied };
}
