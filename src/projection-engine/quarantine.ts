import type { RecordedEvent } from '../event-store/event-store.port';
import { upcasters } from '../event-store/upcasting';
import type { QuarantinedEvent } from '../read-model/read-model-store.port';

/*
 * A bad event stops no consumer (DESIGN §6). Each projection and process
 * manager that reads an event's type and cannot process it quarantines it for
 * itself and goes on; operators see it (/health, `npm run projections`) and
 * skip it, or replay it once fixed. A failing store is not a bad event: that
 * is retried, never quarantined.
 */

/** Reasons and messages are capped: they are shown in /health and the CLI, not stored for forensics. */
const MAX_REASON = 500;

/**
 * Why no consumer can process this event, before any of its code runs: the
 * store could not read it, or it names no firm (every read model is keyed by
 * firm and every process manager acts for one).
 */
export function unreadable(event: RecordedEvent): string | undefined {
  if (event.corrupt !== undefined) return event.corrupt;
  if (typeof (event.metadata as { firmId?: unknown } | undefined)?.firmId !== 'string') {
    return 'metadata.firmId is not a string';
  }
  return undefined;
}

/**
 * The event upcast to its current shape, or why no consumer's code can be
 * given it (unreadable, or its upcaster threw): the one check the live
 * batch, the rebuild and the process managers all make.
 */
export function readableEvent(event: RecordedEvent): RecordedEvent | string {
  const reason = unreadable(event);
  if (reason !== undefined) return reason;
  try {
    return upcasters.upcast(event);
  } catch (error) {
    return `upcasting failed: ${reasonOf(error)}`;
  }
}

/** The error's message only: a stack would show code paths to whoever reads /health. */
export function reasonOf(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.length > MAX_REASON ? `${message.slice(0, MAX_REASON)}…` : message;
}

export function quarantineRecord(
  consumer: string,
  generation: number,
  event: RecordedEvent,
  reason: string,
  at: string,
): QuarantinedEvent {
  return {
    consumer,
    generation,
    position: event.position,
    eventType: event.type,
    streamId: typeof event.streamId === 'string' ? event.streamId : null,
    reason,
    at,
  };
}

/** The hint logged with every quarantined event. */
export function operatorHint(consumer: string, position: bigint): string {
  return (
    `Skip it (npm run projections -- skip ${consumer} ${position}) ` +
    `or replay it once fixed (npm run projections -- replay ${consumer} ${position})`
  );
}
