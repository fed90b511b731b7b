import type { RecordedEvent } from '../src/event-store/event-store.port';
import type {
  CollectionSpec,
  FindQuery,
  ReadModelDocument,
} from '../src/read-model/read-model-store.port';

/*
 * What a projection is, for anyone checking how a dashboard number is made:
 * a name, a version, the event types it reads, the collections it keeps, and
 * `apply`, which turns one event into document writes. It reads the log in
 * order, from the first event, and does nothing else: no clock, no I/O, no
 * framework. The engine (src/projection-engine) feeds it, stores its writes
 * and its checkpoint in one transaction, and can rebuild it from zero.
 */

export interface ProjectionWriter {
  /** The document as this projection last wrote it (including earlier events of the same batch). */
  get<T extends object = ReadModelDocument>(collection: string, id: string): Promise<T | undefined>;
  /** Replaces the whole document (JSON only). Never mutate a document you got: build a new one. */
  put(collection: string, id: string, doc: object): void;
  delete(collection: string, id: string): void;
}

export interface Projection {
  name: string;
  /** Raise it when `apply` changes meaning: the engine then rebuilds the read model. */
  version: number;
  collections: readonly CollectionSpec[];
  /** Event types `apply` is given; the engine skips the others. */
  handles: readonly string[];
  apply(event: RecordedEvent, writer: ProjectionWriter): Promise<void>;
}

/** What the dashboard queries may do with a read model: read one document, or an indexed page. */
export interface ReadModelReader {
  get<T extends object = ReadModelDocument>(collection: string, id: string): Promise<T | undefined>;
  find<T extends object = ReadModelDocument>(collection: string, query: FindQuery): Promise<T[]>;
}

/** Ids of documents that belong to one firm: the firm id leads every key. */
export const key = (...parts: string[]) => parts.join('/');
