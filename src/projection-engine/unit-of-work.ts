import type { DocumentChange, ReadModelDocument } from '../read-model/read-model-store.port';
import { LoadingSnapshot, NotLoaded } from './evolve';

type Loader = (collection: string, id: string) => Promise<ReadModelDocument | undefined>;

/**
 * The documents a runner has read or committed, so that a batch (and the next
 * one) does not read the same hot documents back from the store. Valid only
 * while this runner is the generation's only writer: a checkpoint conflict
 * clears it.
 */
export class DocumentCache {
  private readonly entries = new Map<string, ReadModelDocument | null>();
  private readonly maxEntries = 50_000;

  lookup(key: string): ReadModelDocument | null | undefined {
    return this.entries.get(key);
  }

  remember(key: string, doc: ReadModelDocument | null): void {
    if (this.entries.size >= this.maxEntries && !this.entries.has(key)) {
      // Forget the oldest tenth at once: cheaper than an exact LRU, and a miss only costs a read.
      let drop = Math.ceil(this.maxEntries / 10);
      for (const oldest of this.entries.keys()) {
        this.entries.delete(oldest);
        if (--drop === 0) break;
      }
    }
    this.entries.set(key, doc);
  }

  clear(): void {
    this.entries.clear();
  }
}

export const cacheKey = (collection: string, id: string) => `${collection}\u0000${id}`;

/**
 * The documents of one live batch, as a projection's `evolve` reads them:
 * the changes of the batch's earlier events, then what the batch loaded, then
 * the runner's cache; anything else is not loaded yet (see evolve.ts). The
 * changes of an event are kept only once its `evolve` has answered, so an
 * event that throws leaves no trace.
 */
export class BatchDocuments implements LoadingSnapshot {
  private readonly batch = new Map<string, DocumentChange>();
  /** Read from the store during this batch: kept apart, so that no eviction drops them mid-event. */
  private readonly loaded = new Map<string, ReadModelDocument | null>();

  constructor(
    private readonly read: Loader,
    private readonly cache: DocumentCache,
  ) {}

  get<T extends object = ReadModelDocument>(collection: string, id: string): T | null {
    const key = cacheKey(collection, id);
    const change = this.batch.get(key);
    if (change) return change.doc as T | null;
    let doc = this.loaded.get(key);
    if (doc === undefined) doc = this.cache.lookup(key);
    if (doc === undefined) throw new NotLoaded(collection, id);
    return doc as T | null;
  }

  async load(collection: string, id: string): Promise<void> {
    this.loaded.set(cacheKey(collection, id), (await this.read(collection, id)) ?? null);
  }

  /** The changes of an event `evolve` answered. */
  keep(changes: readonly DocumentChange[]): void {
    for (const change of changes) this.batch.set(cacheKey(change.collection, change.id), change);
  }

  changes(): DocumentChange[] {
    return [...this.batch.values()];
  }

  /** The batch was committed: what it read and wrote is what the store holds now. */
  committed(): void {
    for (const [key, doc] of this.loaded) this.cache.remember(key, doc);
    for (const [key, change] of this.batch) this.cache.remember(key, change.doc);
  }
}
