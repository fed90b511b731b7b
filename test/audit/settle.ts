import { ALL_PROJECTIONS } from '../../projections';
import { EVENT_STORE, EventStore } from '../../src/event-store/event-store.port';
import type { ProcessManager } from '../../src/projection-engine/process-manager';
import { ProjectionEngine } from '../../src/projection-engine/projection-engine';
import { PROCESS_MANAGERS } from '../../src/projection-engine/projections.module';
import { streams } from '../../src/shared/ids';
import type { RunningService } from '../support/harness';
import { mailSettled } from '../support/notifications';

/** The process manager that writes the anchors (src/audit/anchor-writer.ts). */
export const ANCHOR_WRITER = 'chain-anchors';

/**
 * Resolves once every projection and process manager has processed the head
 * of the log, no email is waiting, and the head stays there. Woken by
 * positions, never by a timer.
 */
export async function settled(service: RunningService): Promise<void> {
  const engine = service.app.get(ProjectionEngine);
  const store = service.app.get<symbol, EventStore>(EVENT_STORE);
  const consumers = [
    ...ALL_PROJECTIONS.map((projection) => projection.name),
    ...service.app.get<symbol, ProcessManager[]>(PROCESS_MANAGERS).map((manager) => manager.name),
  ];
  if (!consumers.includes(ANCHOR_WRITER)) throw new Error(`${ANCHOR_WRITER} is not running`);
  for (;;) {
    await mailSettled(service);
    const head = await store.headPosition();
    if (!(await engine.waitFor(head, consumers, 20_000))) {
      throw new Error(`Consumers stuck below ${head}`);
    }
    await mailSettled(service);
    if ((await store.headPosition()) === head) return;
  }
}

/**
 * Resolves once the anchor writer has appended an anchor of the firm after
 * `position` (and processed it): each wait is for the writer to pass the next
 * position of the log.
 */
export async function anchorAfter(
  service: RunningService,
  firmId: string,
  position: bigint,
): Promise<void> {
  const engine = service.app.get(ProjectionEngine);
  for (let seen = position; ;) {
    if (!(await engine.waitFor(seen + 1n, [ANCHOR_WRITER], 20_000))) {
      throw new Error(`No anchor of ${firmId} after position ${position}`);
    }
    const log = await service.events();
    const audit = streams.audit(firmId);
    if (log.some((event) => event.streamId === audit && event.position > position)) return;
    seen = log[log.length - 1].position;
  }
}
