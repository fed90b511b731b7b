import { ALL_PROJECTIONS } from '../../projections';
import { EVENT_STORE, EventStore, NewEvent } from '../../src/event-store/event-store.port';
import { eventHash } from '../../src/shared/event-hash';
import { ProjectionEngine } from '../../src/projection-engine/projection-engine';
import type { RunningService } from '../support/harness';
import { mailSettled } from '../support/notifications';

/**
 * Resolves once the service appends nothing more by itself: every projection
 * and process manager (seat keeper, notifications) has processed the head of
 * the log, the mail queue is empty, and the head did not move meanwhile.
 * Woken by their progress (positions), never by a timer.
 */
export async function settled(service: RunningService, timeoutMs = 30_000): Promise<bigint> {
  const engine = service.app.get(ProjectionEngine);
  const store = service.app.get<symbol, EventStore>(EVENT_STORE);
  const consumers = [...ALL_PROJECTIONS.map((projection) => projection.name), 'seat-keeper'];
  for (;;) {
    const head = await store.headPosition();
    await mailSettled(service, timeoutMs);
    if (!(await engine.waitFor(head, consumers, timeoutMs))) {
      throw new Error(`The consumers did not reach position ${head} in ${timeoutMs} ms`);
    }
    if ((await store.headPosition()) === head) return head;
  }
}

/**
 * Appends events to a stream with their chain links (metadata.hash and
 * previousHash), as a chained append does (ADR 0017): each hash over the
 * event's content and its predecessor's hash.
 */
export async function appendChained(
  store: EventStore,
  streamId: string,
  events: NewEvent[],
): Promise<void> {
  const [last] = await store.readStream(streamId, { direction: 'backwards', maxCount: 1 });
  let previous = (last?.metadata as { hash?: string } | undefined)?.hash ?? null;
  let revision = last ? last.revision : -1n;
  const chained = events.map((event) => {
    revision += 1n;
    const hash = eventHash({ ...event, streamId, revision }, previous);
    const metadata = { ...event.metadata, hash, previousHash: previous };
    previous = hash;
    return { ...event, metadata };
  });
  await store.appendToStream(streamId, chained, last ? last.revision : 'no_stream');
}
