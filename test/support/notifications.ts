import { EVENT_STORE, EventStore } from '../../src/event-store/event-store.port';
import { Mailer } from '../../src/notifications/mailer';
import { ProjectionEngine } from '../../src/projection-engine/projection-engine';
import type { RunningService } from './harness';

export const NOTIFICATION_CONSUMERS = [
  'mail-directory',
  'notification-policy',
  'notification-mailer',
];

/**
 * Resolves once the service is quiet as far as email goes: the directory, the
 * policy and the mailer have processed the head of the log, and nothing queued
 * is waiting to be sent. Woken by their progress (positions), never by a timer.
 */
export async function mailSettled(service: RunningService, timeoutMs = 30_000): Promise<void> {
  const engine = service.app.get(ProjectionEngine);
  const mailer = service.app.get(Mailer);
  const store = service.app.get<symbol, EventStore>(EVENT_STORE);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const head = await store.headPosition();
    const remaining = deadline - Date.now();
    if (remaining <= 0 || !(await engine.waitFor(head, NOTIFICATION_CONSUMERS, remaining))) {
      throw new Error(
        `Email did not settle in ${timeoutMs} ms: ${JSON.stringify(await mailer.health())}`,
      );
    }
    if ((await mailer.health()).pending === 0 && (await store.headPosition()) === head) return;
    // Something is still to be sent: its EmailSent will move the log on.
    await engine.waitFor(head + 1n, NOTIFICATION_CONSUMERS, Math.max(1, deadline - Date.now()));
  }
}
