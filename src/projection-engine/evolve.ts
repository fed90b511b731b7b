import type { DocumentChange, DocumentSnapshot, Projection } from './projection';
import type { RecordedEvent } from '../event-store/event-store.port';
import { reasonOf } from './quarantine';

/**
 * Thrown by an engine snapshot's `get` for a document it has not loaded yet;
 * caught by `evolveOver`, which loads it and runs `evolve` again. Not an
 * Error: it never leaves the engine, and a miss (every new user on the live
 * path) should not pay for a stack trace.
 */
export class NotLoaded {
  constructor(
    readonly collection: string,
    readonly id: string,
  ) {}
}

/**
 * The documents the engine hands a projection: `get` answers what it holds
 * and throws NotLoaded for the others, which `load` reads from the store.
 */
export interface LoadingSnapshot extends DocumentSnapshot {
  /**
   * Reads a document from the store into the snapshot (its absence too), so
   * that `get` answers it. A store failure is thrown: infrastructure, retried
   * by the caller, never blamed on the event.
   */
  load(collection: string, id: string): Promise<void>;
}

/** The changes an event makes, or why it is quarantined (`evolve` threw: its message only). */
export type Evolved = { changes: DocumentChange[] } | { reason: string };

/**
 * Runs a projection's `evolve` on one (readable, upcast) event over an
 * engine snapshot: the live batch and the rebuild both go through here, so
 * there is one way to apply a projection. Answers synchronously when the
 * snapshot held every document `evolve` read (the common case, which keeps
 * a rebuild free of a promise per event); otherwise loads the missing
 * document and runs `evolve` again, pure as it is, until it has all it
 * reads. A store failure while loading is thrown.
 */
export function evolveOver(
  projection: Projection,
  event: RecordedEvent,
  documents: LoadingSnapshot,
): Evolved | Promise<Evolved> {
  const first = attempt(projection, event, documents);
  return first instanceof NotLoaded ? loadAndRetry(projection, event, documents, first) : first;
}

function attempt(
  projection: Projection,
  event: RecordedEvent,
  documents: LoadingSnapshot,
): Evolved | NotLoaded {
  try {
    return { changes: projection.evolve(event, documents) };
  } catch (error) {
    if (error instanceof NotLoaded) return error;
    return { reason: reasonOf(error) };
  }
}

async function loadAndRetry(
  projection: Projection,
  event: RecordedEvent,
  documents: LoadingSnapshot,
  missing: NotLoaded,
): Promise<Evolved> {
  for (;;) {
    await documents.load(missing.collection, missing.id);
    const next = attempt(projection, event, documents);
    if (!(next instanceof NotLoaded)) return next;
    // A snapshot that does not keep what it loaded would loop for ever: a fault of the engine.
    if (next.collection === missing.collection && next.id === missing.id) {
      throw new Error(
        `${projection.name}: ${missing.collection}/${missing.id} not held once loaded`,
      );
    }
    missing = next;
  }
}
