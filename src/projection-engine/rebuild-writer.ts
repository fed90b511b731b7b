import type {
  CollectionSpec,
  DocumentChange,
  QuarantinedEvent,
  ReadModelDocument,
  ReadModelStore,
  ReadModelTarget,
} from '../read-model/read-model-store.port';
import { LoadingSnapshot, NotLoaded } from './evolve';

/** A document as held in memory; `null` is deleted. */
type Held = ReadModelDocument | null;

/**
 * A held document, when it was last put (in events applied), whether it awaits
 * a flush, and whether it was read back from the store after being dropped.
 */
interface Slot {
  doc: Held;
  tick: number;
  dirty: boolean;
  readBack: boolean;
}

/**
 * A projection's documents during a rebuild into a new, empty generation: kept
 * in memory, per collection, and written to the store in large flushes, each
 * one transaction together with the checkpoint.
 *
 * - A projection's `evolve` reads them as a snapshot (`get`), and the engine
 *   applies the changes it answers (`apply`); an event whose `evolve` throws
 *   answers none, so it leaves no trace (it is quarantined).
 * - A document is written once per flush however many events touched it; a
 *   change to the very object already held (projections never mutate what
 *   they got) is no change and writes nothing.
 * - Memory is bounded: beyond `maxDocuments`, the written documents last put
 *   longest ago, across all collections, are dropped; the hot ones (a firm's
 *   counters, written every few events) stay. A document that had to be read
 *   back once is dropped only after all the others: a counter touched every
 *   few thousand events (a firm's corporation group) would otherwise be
 *   dropped and read back again each time, each read waiting for the flush in
 *   flight (32,643 reads of 1,701 groups in the 1,000,000-event bench before
 *   this rule, 1,701 after). A dropped document is not held: `get` throws
 *   NotLoaded, and the engine `load`s it back from the store and runs
 *   `evolve` again; a filter of the dropped ids answers "never dropped, so
 *   absent" without a read, which is the common case for the new ids of a
 *   rebuild.
 */
export class RebuildWriter implements LoadingSnapshot {
  private readonly docs = new Map<string, Map<string, Slot>>();
  /** Per collection, the ids of the dirty slots, in order of first change since the last flush. */
  private readonly dirty = new Map<string, string[]>();
  private held = 0;
  private dirtyCount = 0;
  private ticks = 0;
  private expected = 0n;
  /** The flush being written; the next one waits for it. */
  private inFlight: Promise<void> | undefined;
  private readonly dropped: IdFilter;
  /** Scratch space of `dropOldest`. */
  private ticksOf = new Float64Array(0);
  private readonly maxDocuments: number;

  constructor(
    private readonly store: ReadModelStore,
    private readonly target: ReadModelTarget,
    collections: readonly CollectionSpec[],
    options: { maxDocuments: number; expectedDocuments: number },
  ) {
    for (const spec of collections) {
      this.docs.set(spec.name, new Map());
      this.dirty.set(spec.name, []);
    }
    this.maxDocuments = Math.max(1, options.maxDocuments);
    this.dropped = new IdFilter(options.expectedDocuments);
  }

  /** Documents changed since the last flush. */
  get pending(): number {
    return this.dirtyCount;
  }

  get<T extends object = ReadModelDocument>(collection: string, id: string): T | null {
    const slot = this.collection(collection).get(id);
    if (slot !== undefined) return slot.doc as T | null;
    if (!this.dropped.mightHave(collection, id)) return null;
    throw new NotLoaded(collection, id);
  }

  /** Reads a dropped document back, once the flushes in flight are written; a store failure is thrown. */
  async load(collection: string, id: string): Promise<void> {
    await this.settle();
    const stored = await this.store.get(this.target, collection, id);
    const docs = this.collection(collection);
    if (docs.has(id)) return;
    // Held even when absent, so that `get` answers it; only a document found is kept longer.
    docs.set(id, { doc: stored ?? null, tick: this.ticks, dirty: false, readBack: !!stored });
    this.held++;
  }

  /** Applies the changes one event made (what its `evolve` answered). */
  apply(changes: readonly DocumentChange[]): void {
    const tick = ++this.ticks;
    for (const { collection, id, doc } of changes) {
      const docs = this.collection(collection);
      const slot = docs.get(id);
      if (slot === undefined) {
        docs.set(id, { doc, tick, dirty: true, readBack: false });
        this.held++;
      } else if (slot.doc === doc) {
        continue;
      } else {
        slot.doc = doc;
        slot.tick = tick;
        if (slot.dirty) continue;
        slot.dirty = true;
      }
      this.dirty.get(collection)!.push(id);
      this.dirtyCount++;
    }
  }

  /** Documents held in memory. */
  get size(): number {
    return this.held;
  }

  /**
   * Writes the pending documents and the events quarantined since the last
   * flush, and moves the checkpoint to `position`, in one transaction.
   * Answers once the previous flush has been written, not this one: the
   * caller goes on applying events while the store writes (`settle` waits for
   * the last one). Throws when another writer moved the checkpoint.
   */
  async flush(position: bigint, quarantined: readonly QuarantinedEvent[] = []): Promise<void> {
    await this.settle();
    const changes: DocumentChange[] = [];
    for (const [collection, ids] of this.dirty) {
      const docs = this.docs.get(collection)!;
      for (const id of ids) {
        const slot = docs.get(id)!;
        slot.dirty = false;
        changes.push({ collection, id, doc: slot.doc });
      }
      ids.length = 0;
    }
    this.dirtyCount = 0;
    const expected = this.expected;
    this.expected = position;
    this.inFlight = this.store
      .commit(this.target, { expected, position, changes, quarantined })
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
   * Down to half the bound (so that it runs rarely): the written documents
   * last put longest ago, whatever their collection, those never read back
   * first. Documents not yet flushed stay.
   */
  dropOldest(): void {
    if (this.held === this.dirtyCount) return;
    let drop = Math.ceil(this.held - this.maxDocuments / 2);
    drop -= this.dropWhere(drop, false);
    if (drop > 0) this.dropWhere(drop, true);
  }

  /** Drops up to `count` clean documents (read back or not), oldest first; answers how many. */
  private dropWhere(count: number, readBack: boolean): number {
    // Runs every few pages: no allocation per document (no entry arrays, no boxed ticks).
    if (this.ticksOf.length < this.held) this.ticksOf = new Float64Array(this.held * 2);
    const ticks = this.ticksOf;
    let candidates = 0;
    for (const docs of this.docs.values()) {
      docs.forEach((slot) => {
        if (!slot.dirty && slot.readBack === readBack) ticks[candidates++] = slot.tick;
      });
    }
    const drop = Math.min(candidates, count);
    if (drop <= 0) return 0;
    // The tick of the last document to drop: every candidate put no later goes.
    const newest = ticks.subarray(0, candidates).sort()[drop - 1];
    let dropped = 0;
    for (const [collection, docs] of this.docs) {
      docs.forEach((slot, id) => {
        if (slot.dirty || slot.readBack !== readBack || slot.tick > newest) return;
        docs.delete(id);
        this.held--;
        dropped++;
        // A deleted document is absent from the store too: nothing to remember.
        if (slot.doc !== null) this.dropped.add(collection, id);
      });
    }
    return dropped;
  }

  private collection(name: string): Map<string, Slot> {
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
    hashes(collection, id);
    const h1 = hashed.h1;
    const h2 = hashed.h2;
    for (let i = 0; i < 7; i++) {
      const bit = (h1 + Math.imul(i, h2)) & this.mask;
      this.bits[bit >>> 5] |= 1 << (bit & 31);
    }
  }

  mightHave(collection: string, id: string): boolean {
    hashes(collection, id);
    const h1 = hashed.h1;
    const h2 = hashed.h2;
    for (let i = 0; i < 7; i++) {
      const bit = (h1 + Math.imul(i, h2)) & this.mask;
      if ((this.bits[bit >>> 5] & (1 << (bit & 31))) === 0) return false;
    }
    return true;
  }
}

/** The two hashes last computed by `hashes` (asked for a million times: no array each time). */
const hashed = { h1: 0, h2: 0 };

/** Two 32-bit FNV-1a style hashes over collection, a separator and id, into `hashed`. */
function hashes(collection: string, id: string): void {
  let a = 0x811c9dc5;
  let b = 0x01000193;
  for (let i = 0; i < collection.length; i++) {
    const code = collection.charCodeAt(i);
    a = Math.imul(a ^ code, 0x01000193);
    b = Math.imul(b ^ code, 0x5bd1e995) ^ (b >>> 15);
  }
  a = Math.imul(a, 0x01000193);
  b = Math.imul(b, 0x5bd1e995) ^ (b >>> 15);
  for (let i = 0; i < id.length; i++) {
    const code = id.charCodeAt(i);
    a = Math.imul(a ^ code, 0x01000193);
    b = Math.imul(b ^ code, 0x5bd1e995) ^ (b >>> 15);
  }
  hashed.h1 = a >>> 0;
  hashed.h2 = (b | 1) >>> 0;
}
