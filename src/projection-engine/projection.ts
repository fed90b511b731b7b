import type { RecordedEvent } from '../event-store/event-store.port';
import type {
  CollectionSpec,
  DocumentChange,
  FindQuery,
  ReadModelDocument,
} from '../read-model/read-model-store.port';

/*
 * What a projection is, for anyone checking how a dashboard number is made:
 * a name, a version, the event types it reads, the collections it keeps, and
 * `evolve`, a pure function from one event and the documents as they stand
 * to the document changes that event makes (in the style of Emmett's
 * projections). It never touches a store: the engine (src/projection-engine)
 * loads the documents it reads, writes its changes with the checkpoint in one
 * transaction, and can rebuild it from zero with the very same function; a
 * spec folds events through it over documents in memory
 * (test/projections/, `project` below).
 */

export type { DocumentChange } from '../read-model/read-model-store.port';

/**
 * The documents a projection reads, as they stand before the event: what
 * earlier events made of them. Synchronous. `null`: no such document.
 *
 * The engine's snapshot may not hold a document yet: it then throws a signal
 * of its own, loads the document and calls `evolve` again. So `evolve` must
 * not catch what `get` throws.
 */
export interface DocumentSnapshot {
  get<T extends object = ReadModelDocument>(collection: string, id: string): T | null;
}

export interface Projection {
  name: string;
  /** Raise it when `evolve` changes what it builds: the engine then rebuilds the read model. */
  version: number;
  collections: readonly CollectionSpec[];
  /** Event types `evolve` is given (its canHandle); the engine passes over the others. */
  handles: readonly string[];
  /**
   * Pure and synchronous: the document changes one event makes, reading the
   * documents as they stand through `documents`. No I/O, no clock, no
   * randomness, no state of its own: the engine may call it more than once
   * for one event (see DocumentSnapshot), and a rebuild must build what the
   * live path built. An event it cannot use (a missing or malformed field)
   * throws: the engine quarantines it, with none of its changes. An event of
   * a type it does not handle changes nothing (`[]`).
   */
  evolve(event: RecordedEvent, documents: DocumentSnapshot): DocumentChange[];
}

/** What the dashboard queries may do with a read model: read one document, or an indexed page. */
export interface ReadModelReader {
  get<T extends object = ReadModelDocument>(collection: string, id: string): Promise<T | undefined>;
  find<T extends object = ReadModelDocument>(collection: string, query: FindQuery): Promise<T[]>;
}

/** Ids of documents that belong to one firm: the firm id leads every key. */
export const key = (...parts: string[]) => parts.join('/');

/** The change that replaces the whole document (JSON only; build a new object, never mutate one read). */
export const put = (collection: string, id: string, doc: object): DocumentChange => ({
  collection,
  id,
  doc: doc as ReadModelDocument,
});

/** The change that deletes the document. */
export const remove = (collection: string, id: string): DocumentChange => ({
  collection,
  id,
  doc: null,
});

const slot = (collection: string, id: string) => `${collection}\u0000${id}`;

/**
 * The changes one event makes, built up over the snapshot and read back as
 * they are made: for a projection that changes one document twice for one
 * event (a user moving within the same group counts out, then in). Local to
 * one `evolve` call, so the function stays pure.
 */
export class ChangeSet implements DocumentSnapshot {
  private readonly changes = new Map<string, DocumentChange>();

  constructor(private readonly before: DocumentSnapshot) {}

  get<T extends object = ReadModelDocument>(collection: string, id: string): T | null {
    const change = this.changes.get(slot(collection, id));
    if (change) return change.doc as T | null;
    return this.before.get<T>(collection, id);
  }

  put(collection: string, id: string, doc: object): void {
    this.changes.set(slot(collection, id), put(collection, id, doc));
  }

  remove(collection: string, id: string): void {
    this.changes.set(slot(collection, id), remove(collection, id));
  }

  /** The last change of each document, in the order each was first changed. */
  list(): DocumentChange[] {
    return [...this.changes.values()];
  }
}

/**
 * Documents in memory, where a missing document is absent (`null`): for
 * specs, and for reading a read model as of a moment, with no database.
 */
export class InMemoryDocuments implements DocumentSnapshot {
  private readonly docs = new Map<string, DocumentChange>();

  get<T extends object = ReadModelDocument>(collection: string, id: string): T | null {
    return (this.docs.get(slot(collection, id))?.doc ?? null) as T | null;
  }

  apply(changes: readonly DocumentChange[]): void {
    for (const change of changes) {
      const at = slot(change.collection, change.id);
      if (change.doc === null) this.docs.delete(at);
      else this.docs.set(at, change);
    }
  }

  /** The documents of one collection, by id. */
  collection(name: string): Record<string, ReadModelDocument> {
    const found: Record<string, ReadModelDocument> = {};
    for (const { collection, id, doc } of this.docs.values()) {
      if (collection === name && doc) found[id] = doc;
    }
    return found;
  }
}

/**
 * Folds events through a projection into documents in memory, as the engine
 * does into a store: events of types it does not handle are passed over.
 * Give it events as the engine would (readable, upcast to their current
 * shape). Throws what `evolve` throws, where the engine would quarantine the
 * event.
 */
export function project(
  projection: Projection,
  events: Iterable<RecordedEvent>,
  into = new InMemoryDocuments(),
): InMemoryDocuments {
  const handles = new Set(projection.handles);
  for (const event of events) {
    if (handles.has(event.type)) into.apply(projection.evolve(event, into));
  }
  return into;
}
