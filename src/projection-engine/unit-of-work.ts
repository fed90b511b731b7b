import type { ProjectionWriter } from '../../projections/projection';
import type { DocumentChange, ReadModelDocument } from '../read-model/read-model-store.port';
import { storeRead } from './quarantine';

type Loader = (collection: string, id: string) => Promise<ReadModelDocument | undefined>;

/**
 * The documents a runner has read or committed, so that a batch (and the next
 * one) does not read the same hot documents back from the store. Valid only
 * while this runner is the generation's only writer: a checkpoint conflict
 * clears it.
 */
export class DocumentCache {
  private readonly entries = new Map<string, ReadModelDocument | null>();

  /**
   * @param complete the cache starts out knowing every document: true for a
   * new, empty generation (a rebuild), so a miss means "absent" without a
   * read, until the first eviction.
   */
  constructor(
    private readonly maxEntries = 50_000,
    private complete = false,
  ) {}

  lookup(key: string): ReadModelDocument | null | undefined {
    const found = this.entries.get(key);
    return found === undefined && this.complete ? null : found;
  }

  remember(key: string, doc: ReadModelDocument | null): void {
    if (this.entries.size >= this.maxEntries && !this.entries.has(key)) {
      this.complete = false;
      // Forget the oldest tenth at once: cheaper than an exact LRU, and a miss only costs a read.
      let drop = Math.ceil(this.maxEntries / 10);
      for (const oldest of this.entries.keys()) {
        this.entries.delete(oldest);
        if (--drop === 0) break;
      }
    }
    this.entries.set(key, doc);
  }

  absorb(changes: readonly DocumentChange[]): void {
    for (const change of changes) this.remember(cacheKey(change.collection, change.id), change.doc);
  }

  clear(): void {
    this.complete = false;
    this.entries.clear();
  }
}

export const cacheKey = (collection: string, id: string) => `${collection}\u0000${id}`;

/**
 * The writes of one batch. Writes of the event being applied are staged apart,
 * so an event whose `apply` throws halfway leaves no trace: it is quarantined
 * and the batch goes on. A failing read of the store is thrown as a
 * StoreReadError, so that it is retried rather than blamed on the event.
 */
export class UnitOfWork implements ProjectionWriter {
  private readonly batch = new Map<string, DocumentChange>();
  private readonly staged = new Map<string, DocumentChange>();

  constructor(
    private readonly load: Loader,
    private readonly cache: DocumentCache,
  ) {}

  async get<T extends object = ReadModelDocument>(
    collection: string,
    id: string,
  ): Promise<T | undefined> {
    const key = cacheKey(collection, id);
    const change = this.staged.get(key) ?? this.batch.get(key);
    if (change) return (change.doc ?? undefined) as unknown as T | undefined;
    const cached = this.cache.lookup(key);
    if (cached !== undefined) return (cached ?? undefined) as unknown as T | undefined;
    const loaded = await storeRead(() => this.load(collection, id));
    this.cache.remember(key, loaded ?? null);
    return loaded as unknown as T | undefined;
  }

  put(collection: string, id: string, doc: object): void {
    this.staged.set(cacheKey(collection, id), { collection, id, doc: doc as ReadModelDocument });
  }

  delete(collection: string, id: string): void {
    this.staged.set(cacheKey(collection, id), { collection, id, doc: null });
  }

  keepEvent(): void {
    for (const [key, change] of this.staged) this.batch.set(key, change);
    this.staged.clear();
  }

  discardEvent(): void {
    this.staged.clear();
  }

  changes(): DocumentChange[] {
    return [...this.batch.values()];
  }
}
