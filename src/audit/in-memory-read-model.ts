import type {
  DocumentChange,
  DocumentSnapshot,
  ReadModelReader,
} from '../projection-engine/projection';
import type {
  CollectionSpec,
  FindQuery,
  IndexValue,
  ReadModelDocument,
} from '../read-model/read-model-store.port';

/*
 * A read model held in memory, read through the same ReadModelReader the
 * dashboards' queries take, so that "the state as of a moment" is answered by
 * the dashboards' own query functions (projections/*.projection.ts). `find`
 * does what the stores do (read-model-store.port.ts FindQuery), as the SQLite
 * store does it; test/audit/state-in-memory-reader.spec.ts compares the two
 * on random documents and queries.
 */

/**
 * A projection's documents in memory, as a fold leaves them: one map per
 * collection (no key to build per read), and a cheap copy for snapshots.
 * Documents are shared between copies: a projection never changes a document
 * it read, it puts a new one (projection.ts `put`), and readers get clones.
 */
export class FoldDocuments implements DocumentSnapshot {
  private readonly collections = new Map<string, Map<string, ReadModelDocument>>();

  get<T extends object = ReadModelDocument>(collection: string, id: string): T | null {
    return (this.collections.get(collection)?.get(id) ?? null) as T | null;
  }

  apply(changes: readonly DocumentChange[]): void {
    for (const { collection, id, doc } of changes) {
      let documents = this.collections.get(collection);
      if (!documents) {
        documents = new Map();
        this.collections.set(collection, documents);
      }
      if (doc === null) documents.delete(id);
      else documents.set(id, doc);
    }
  }

  /** The documents of one collection, by id, in no particular order. */
  entries(collection: string): Iterable<[string, ReadModelDocument]> {
    return this.collections.get(collection)?.entries() ?? [];
  }

  size(collection: string): number {
    return this.collections.get(collection)?.size ?? 0;
  }

  /** Documents in all collections: what a copy costs (map entries; the documents are shared). */
  get count(): number {
    let count = 0;
    for (const documents of this.collections.values()) count += documents.size;
    return count;
  }

  copy(): FoldDocuments {
    const copy = new FoldDocuments();
    for (const [name, documents] of this.collections)
      copy.collections.set(name, new Map(documents));
    return copy;
  }
}

/** Null, then numbers (numerically), then text (by code point, as SQLite's BINARY collation on UTF-8). */
function compareValues(a: IndexValue, b: IndexValue): number {
  const rank = (value: IndexValue) => (value === null ? 0 : typeof value === 'number' ? 1 : 2);
  const byRank = rank(a) - rank(b);
  if (byRank !== 0) return byRank;
  if (typeof a === 'number') return a - (b as number);
  if (typeof a === 'string') return compareCodePoints(a, b as string);
  return 0;
}

const isSurrogate = (unit: number) => unit >= 0xd800 && unit <= 0xdfff;

/**
 * UTF-8 byte order, which is code point order: UTF-16 code unit order but for
 * a character beyond U+FFFF (a surrogate pair), which sorts after every
 * character of the basic plane, U+E000-U+FFFF included.
 */
function compareCodePoints(a: string, b: string): number {
  const length = Math.min(a.length, b.length);
  for (let i = 0; i < length; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    if (isSurrogate(x) !== isSurrogate(y)) return isSurrogate(x) ? 1 : -1;
    return x - y;
  }
  return a.length - b.length;
}

const BEYOND_SURROGATES = /[\uD800-\uFFFF]/;

/**
 * A value whose text sorts with `<` (UTF-16 code units) as compareValues
 * sorts it (code points): characters from U+E000 move below the surrogates,
 * the surrogates above them. Most text has neither and is returned as is.
 */
function sortable(value: IndexValue): IndexValue {
  if (typeof value !== 'string' || !BEYOND_SURROGATES.test(value)) return value;
  let text = '';
  for (let i = 0; i < value.length; i++) {
    const unit = value.charCodeAt(i);
    text += String.fromCharCode(
      unit >= 0xe000 ? unit - 0x800 : unit >= 0xd800 ? unit + 0x2000 : unit,
    );
  }
  return text;
}

/** compareValues over `sortable` values: text compared as code units. */
function compareSortable(a: IndexValue, b: IndexValue): number {
  if (typeof a === 'string' && typeof b === 'string') return a < b ? -1 : a > b ? 1 : 0;
  const rank = (value: IndexValue) => (value === null ? 0 : typeof value === 'number' ? 1 : 2);
  const byRank = rank(a) - rank(b);
  if (byRank !== 0) return byRank;
  return typeof a === 'number' ? a - (b as number) : 0;
}

/** A document field as the stores index it: booleans as 1/0, objects as JSON text, missing as null. */
function indexValue(value: unknown): IndexValue {
  if (value === undefined || value === null) return null;
  if (typeof value === 'string' || typeof value === 'number') return value;
  if (typeof value === 'boolean') return value ? 1 : 0;
  return JSON.stringify(value);
}

/** SQL's `=`: null equals nothing, a number never equals a text. */
const sqlEquals = (a: IndexValue, b: IndexValue) =>
  a !== null && b !== null && typeof a === typeof b && compareValues(a, b) === 0;

/**
 * A row value compared with the keyset cursor, `(a, b) > (x, y)` in SQL:
 * unknown (so not kept) as soon as a null is met before the order is decided.
 */
function isAfter(values: readonly IndexValue[], after: readonly IndexValue[]): boolean {
  for (let i = 0; i < values.length; i++) {
    if (values[i] === null || after[i] === null) return false;
    const order = compareValues(values[i], after[i]);
    if (order !== 0) return order > 0;
  }
  return false;
}

/** One projection's documents in memory, read as the stores read theirs. */
export class InMemoryReadModel implements ReadModelReader {
  constructor(
    private readonly documents: FoldDocuments,
    private readonly collections: readonly CollectionSpec[],
  ) {}

  get<T extends object = ReadModelDocument>(
    collection: string,
    id: string,
  ): Promise<T | undefined> {
    this.spec(collection);
    const doc = this.documents.get<T>(collection, id);
    // A copy, as a store hands out: a caller changing it changes nothing here.
    return Promise.resolve(doc === null ? undefined : structuredClone(doc));
  }

  find<T extends object = ReadModelDocument>(collection: string, query: FindQuery): Promise<T[]> {
    const spec = this.spec(collection);
    const known = (field: string) => {
      if (field !== 'id' && !spec.fields.includes(field)) {
        throw new Error(`${collection}.${field} is not an indexed field`);
      }
      return field;
    };
    const field = (id: string, doc: ReadModelDocument, name: string) =>
      name === 'id' ? id : indexValue(doc[name]);
    const equals = Object.entries(query.equals ?? {}).map(
      ([name, value]) => [known(name), value] as const,
    );
    const contains = query.contains && query.contains.text !== '' ? query.contains : undefined;
    contains?.fields.forEach((name) => {
      if (!spec.search?.includes(name)) {
        throw new Error(`${collection}.${name} is not a searchable field`);
      }
      known(name);
    });
    const order = query.orderBy.map(known);
    const rows: Array<{ id: string; doc: ReadModelDocument; key: IndexValue[] }> = [];
    for (const [id, doc] of this.documents.entries(collection)) {
      const matches =
        equals.every(([name, value]) =>
          value === null ? field(id, doc, name) === null : sqlEquals(field(id, doc, name), value),
        ) &&
        (!contains ||
          // Text values only: the port defines `contains` on text fields, and the stores
          // disagree on others (SQLite matches a number's text form, MongoDB never does).
          contains.fields.some((name) => {
            const value = field(id, doc, name);
            return typeof value === 'string' && value.includes(contains.text);
          }));
      if (!matches) continue;
      const key = order.map((name) => field(id, doc, name));
      if (query.after && !isAfter(key, query.after)) continue;
      rows.push({ id, doc, key: key.map(sortable) });
    }
    rows.sort((x, y) => {
      for (let i = 0; i < order.length; i++) {
        const byField = compareSortable(x.key[i], y.key[i]);
        if (byField !== 0) return byField;
      }
      return 0;
    });
    return Promise.resolve(
      rows.slice(0, Math.max(0, query.limit)).map((row) => structuredClone(row.doc) as T),
    );
  }

  private spec(collection: string): CollectionSpec {
    const spec = this.collections.find((candidate) => candidate.name === collection);
    if (!spec) throw new Error(`No collection ${collection}`);
    return spec;
  }
}
