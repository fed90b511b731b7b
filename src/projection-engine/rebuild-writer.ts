import type { ProjectionWriter } from '../../projections/projection';
import type {
  CollectionSpec,
  DocumentChange,
  ProjectionFailure,
  ReadModelDocument,
  ReadModelStore,
  ReadModelTarget,
} from '../read-model/read-model-store.port';

/** A document as held in memory; `null` is deleted. */
type Held = ReadModelDocument | null;

/**
 * A projection's documents during a rebuild into a new, empty generation: kept
 * in memory, per collection, and written to the store in large flushes, each
 * one transaction together with the checkpoint.
 *
 * - A document is written once per flush however many events touched it; a
 *   `put` of the very object already held (projections never mutate what they
 *   got) is no change and writes nothing.
 * - Writes of the event being applied are staged apart, so an event whose
 *   `apply` throws leaves no trace.
 * - Memory is bounded: beyond `maxDocuments`, the documents first put longest
 *   ago are dropped once written. A dropped document is read back from the store
 *   when asked for again; a filter of the dropped ids answers "never dropped,
 *   so absent" without a read, which is the common case for the new ids of a
 *   rebuild.
 */
export class RebuildWriter implements ProjectionWriter {
  /** Per collection, in order of first `put` (the oldest first). */
  private readonly docs = new Map<string, Map<string, Held>>();
  private readonly dirty = new Map<string, Set<string>>();
  private readonly staged: Array<{ collection: string; id: string; doc: Held }> = [];
  private held = 0;
  private expected = 0n;
  /** The flush being written; the next one waits for it. */
  private inFlight: Promise<void> | undefined;
  private readonly dropped: IdFilter;
  private readonly maxDocuments: number;

  constructor(
    private readonly store: ReadModelStore,
    private readonly target: ReadModelTarget,
    collections: readonly CollectionSpec[],
    options: { maxDocuments: number; expectedDocuments: number },
  ) {
    for (const spec of collections) {
      this.docs.set(spec.name, new Map());
      this.dirty.set(spec.name, new Set());
    }
    this.maxDocuments = Math.max(1, options.maxDocuments);
    this.dropped = new IdFilter(options.expectedDocuments);
  }

  /** Documents changed since the last flush. */
  get pending(): number {
    let count = 0;
    for (const ids of this.dirty.values()) count += ids.size;
    return count;
  }

  async get<T extends object = ReadModelDocument>(
    collection: string,
    id: string,
  ): Promise<T | undefined> {
    for (let i = this.staged.length - 1; i >= 0; i--) {
      const change = this.staged[i];
      if (change.id === id && change.collection === collection) {
        return (change.doc ?? undefined) as T | undefined;
      }
    }
    const docs = this.collection(collection);
    const doc = docs.get(id);
    if (doc !== undefined) return (doc ?? undefined) as T | undefined;
    if (!this.dropped.mightHave(collection, id)) return undefined;
    await this.settle();
    const stored = await this.store.get(this.target, collection, id);
    if (stored === undefined) return undefined;
    docs.set(id, stored);
    this.held++;
    return stored as unknown as T;
  }

  put(collection: string, id: string, doc: object): void {
    this.staged.push({ collection, id, doc: doc as ReadModelDocument });
  }

  delete(collection: string, id: string): void {
    this.staged.push({ collection, id, doc: null });
  }

  keepEvent(): void {
    for (const { collection, id, doc } of this.staged) {
      const docs = this.collection(collection);
      const current = docs.get(id);
      if (current === doc) continue;
      if (current === undefined) this.held++;
      docs.set(id, doc);
      this.dirty.get(collection)!.add(id);
    }
    this.staged.length = 0;
  }

  discardEvent(): void {
    this.staged.length = 0;
  }

  /** Documents held in memory. */
  get size(): number {
    return this.held;
  }

  /**
   * Writes the pending documents and moves the checkpoint to `position`, in
   * one transaction. Answers once the previous flush has been written, not
   * this one: the caller goes on applying events while the store writes
   * (`settle` waits for the last one). Throws when another writer moved the
   * checkpoint.
   */
  async flush(position: bigint, failure: ProjectionFailure | null): Promise<void> {
    await this.settle();
    const changes: DocumentChange[] = [];
    for (const [collection, ids] of this.dirty) {
      const docs = this.docs.get(collection)!;
      for (const id of ids) changes.push({ collection, id, doc: docs.get(id)! });
      ids.clear();
    }
    const expected = this.expected;
    this.expected = position;
    this.inFlight = this.store
      .commit(this.target, { expected, position, changes, failure })
      .then((outcome) => {
        if (outcome === 'conflict') {
          throw new Error(
            `Generation ${this.target.generation} of ${this.target.projection} was written by someone else`,
          );
        }
      });
    // Dropped documents are read back only after `settle`, so they may go now.
    if (this.held > this.maxDocuments) this.dropOldest();
  }

  /** Waits until every flush has been written. */
  async settle(): Promise<void> {
    const inFlight = this.inFlight;
    this.inFlight = undefined;
    await inFlight;
  }

  /**
   * Down to three quarters of the bound, the same share of each collection;
   * documents not yet flushed stay.
   */
  dropOldest(): void {
    const keep = (this.maxDocuments * 3) / 4;
    const share = 1 - keep / this.held;
    for (const [collection, docs] of this.docs) {
      const dirty = this.dirty.get(collection)!;
      let drop = Math.ceil(docs.size * share);
      for (const [id, doc] of docs) {
        if (drop-- <= 0) break;
        if (dirty.has(id)) continue;
        docs.delete(id);
        this.held--;
        // A deleted document is absent from the store too: nothing to remember.
        if (doc !== null) this.dropped.add(collection, id);
      }
    }
  }

  private collection(name: string): Map<string, Held> {
    const docs = this.docs.get(name);
    if (!docs) throw new Error(`${this.target.projection} has no collection ${name}`);
    return docs;
  }
}

/**
 * A Bloom filter of (collection, id): "no" is certain, "maybe" costs a read.
 * About ten bits per expected id (1% false positives at that size); more ids
 * only make "maybe" more frequent, never wrong.
 */
export class IdFilter {
  private readonly bits: Uint32Array;
  private readonly mask: number;

  constructor(expected: number) {
    let size = 1 << 16;
    while (size < expected * 10 && size < 1 << 30) size *= 2;
    this.bits = new Uint32Array(size / 32);
    this.mask = size - 1;
  }

  add(collection: string, id: string): void {
    const [h1, h2] = hashes(collection, id);
    for (let i = 0; i < 7; i++) {
      const bit = (h1 + Math.imul(i, h2)) & this.mask;
      this.bits[bit >>> 5] |= 1 << (bit & 31);
    }
  }

  mightHave(collection: string, id: string): boolean {
    const [h1, h2] = hashes(collection, id);
    for (let i = 0; i < 7; i++) {
      const bit = (h1 + Math.imul(i, h2)) & this.mask;
      if ((this.bits[bit >>> 5] & (1 << (bit & 31))) === 0) return false;
    }
    return true;
  }
}

/** Two 32-bit FNV-1a style hashes over collection, a separator and id. */
function hashes(collection: string, id: string): [number, number] {
  let a = 0x811c9dc5;
  let b = 0x01000193;
  const text = collection.length + id.length + 1;
  for (let i = 0; i < text; i++) {
    const code =
      i < collection.length
        ? collection.charCodeAt(i)
        : i === collection.length
          ? 0
          : id.charCodeAt(i - collection.length - 1);
    a = Math.imul(a ^ code, 0x01000193);
    b = Math.imul(b ^ code, 0x5bd1e995) ^ (b >>> 15);
  }
  return [a >>> 0, (b | 1) >>> 0];
}
