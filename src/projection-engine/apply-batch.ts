import type { Projection } from '../../projections/projection';
import type { RecordedEvent } from '../event-store/event-store.port';
import { upcasters } from '../event-store/upcasting';
import type {
  QuarantinedEvent,
  ReadModelStore,
  ReadModelTarget,
} from '../read-model/read-model-store.port';
import { quarantineRecord, reasonOf, StoreReadError, unreadable } from './quarantine';
import { DocumentCache, UnitOfWork } from './unit-of-work';

export interface BatchOutcome {
  outcome: 'committed' | 'conflict';
  /** The checkpoint after the batch: its last event. */
  position: bigint;
  /** Events of the batch this projection passed over, committed with the checkpoint. */
  quarantined: QuarantinedEvent[];
  applied: number;
}

/**
 * Applies a batch of log events to one projection and commits its writes,
 * the events it quarantined and the checkpoint, in one transaction. Events the
 * projection does not handle (any type it does not know) and events an
 * operator skipped only move the checkpoint. An event that cannot be read, or
 * whose `apply` throws, is quarantined (its partial writes dropped) and the
 * batch goes on (DESIGN §6). A read-model store failure inside `apply` is
 * thrown: nothing of the batch is committed and the runner retries it.
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
  const quarantined: QuarantinedEvent[] = [];
  let applied = 0;
  for (const event of events) {
    if (event.position <= position) continue;
    position = event.position;
    if (!handles.has(event.type) || skips.has(event.position)) continue;
    const reason = unreadable(event) ?? (await applyOne(projection, event, uow));
    if (reason === undefined) applied++;
    else
      quarantined.push(quarantineRecord(projection.name, target.generation, event, reason, now()));
  }
  const changes = uow.changes();
  const outcome = await store.commit(target, { expected, position, changes, quarantined });
  if (outcome === 'committed') cache.absorb(changes);
  else cache.clear();
  return { outcome, position, quarantined, applied };
}

/** Applies one readable event: undefined when done, else why it is quarantined. */
async function applyOne(
  projection: Projection,
  event: RecordedEvent,
  uow: UnitOfWork,
): Promise<string | undefined> {
  try {
    await projection.apply(upcasters.upcast(event), uow);
    uow.keepEvent();
    return undefined;
  } catch (error) {
    uow.discardEvent();
    if (error instanceof StoreReadError) throw error.original;
    return reasonOf(error);
  }
}
