import type { FoldDocuments } from './in-memory-read-model';

/**
 * A fold of a firm's events stopped at a log position (state-as-of.ts): the
 * documents of each read model folded, and when the events folded occurred.
 */
export interface FoldSnapshot {
  /** The last event folded (applied or passed over); the fold resumes after it. */
  position: bigint;
  /**
   * The latest `occurredAt` of the events folded (milliseconds). The snapshot
   * is a prefix of the state as of any moment at or after it: every event it
   * holds occurred by then.
   */
  maxOccurredAt: number;
  /** One per read model, in the fold's order. Never changed once kept: copy before folding on. */
  documents: readonly FoldDocuments[];
}

export interface StateSnapshotsOptions {
  /** Map entries (documents) all snapshots may hold together; the documents themselves are shared. */
  maxDocuments?: number;
  /** Snapshots kept per firm; beyond, the one closest to its neighbours goes. */
  perFirm?: number;
  /** A fold keeps a snapshot every this many events it folds. */
  every?: number;
}

interface FirmSnapshots {
  /** The operators' skips the snapshots were folded with: other skips, other folds. */
  skipsKey: string;
  /** By position. */
  snapshots: FoldSnapshot[];
}

/**
 * Snapshots of firms' folds kept in memory, so that asking the state of a firm
 * with a long history again (another moment, or the same one later) folds only
 * the events after the closest snapshot at or before that moment instead of
 * the whole history (docs/audit.md, "The state as of a moment").
 *
 * A snapshot never goes stale: the log only grows after it. It is tied to the
 * operators' skips it was folded with. Bounded: a few snapshots per firm, and
 * a number of documents over all firms, the least recently used firms going
 * first. Process-local: a restart, or another instance, folds from zero once.
 */
export class StateSnapshots {
  private readonly firms = new Map<string, FirmSnapshots>();
  private readonly maxDocuments: number;
  private readonly perFirm: number;
  readonly every: number;

  constructor(options: StateSnapshotsOptions = {}) {
    this.maxDocuments = options.maxDocuments ?? 2_000_000;
    this.perFirm = options.perFirm ?? 8;
    this.every = options.every ?? 20_000;
  }

  /** The latest snapshot of the firm that every moment at or after `asOf` includes, if any. */
  usable(firmId: string, skipsKey: string, asOf: number): FoldSnapshot | undefined {
    const firm = this.firms.get(firmId);
    if (!firm || firm.skipsKey !== skipsKey) return undefined;
    // Most recently used last: the first firms go when memory runs short.
    this.firms.delete(firmId);
    this.firms.set(firmId, firm);
    let found: FoldSnapshot | undefined;
    for (const snapshot of firm.snapshots) {
      if (snapshot.maxOccurredAt > asOf) break;
      found = snapshot;
    }
    return found;
  }

  /** Keeps a snapshot; its documents must not change afterwards. */
  keep(firmId: string, skipsKey: string, snapshot: FoldSnapshot): void {
    let firm = this.firms.get(firmId);
    if (!firm || firm.skipsKey !== skipsKey) firm = { skipsKey, snapshots: [] };
    this.firms.delete(firmId);
    this.firms.set(firmId, firm);
    if (firm.snapshots.some((kept) => kept.position === snapshot.position)) return;
    firm.snapshots.push(snapshot);
    firm.snapshots.sort((a, b) => (a.position < b.position ? -1 : 1));
    while (firm.snapshots.length > this.perFirm) firm.snapshots.splice(closest(firm.snapshots), 1);
    this.evict(firmId);
  }

  /** Documents held, for the budget (and the bench). */
  get documents(): number {
    let count = 0;
    for (const firm of this.firms.values()) {
      for (const snapshot of firm.snapshots) count += documentsOf(snapshot);
    }
    return count;
  }

  private evict(current: string): void {
    let total = this.documents;
    for (const [firmId, firm] of this.firms) {
      if (total <= this.maxDocuments) return;
      if (firmId === current) continue;
      for (const snapshot of firm.snapshots) total -= documentsOf(snapshot);
      this.firms.delete(firmId);
    }
    // The current firm alone is over budget: its latest snapshot, or nothing, stays.
    const firm = this.firms.get(current);
    while (firm && total > this.maxDocuments && firm.snapshots.length > 0) {
      const dropped = firm.snapshots.length > 1 ? firm.snapshots.shift()! : firm.snapshots.pop()!;
      total -= documentsOf(dropped);
    }
  }
}

const documentsOf = (snapshot: FoldSnapshot) =>
  snapshot.documents.reduce((sum, documents) => sum + documents.count, 0);

/** The inner snapshot whose neighbours are closest: dropping it leaves the smallest gap. Never the last. */
function closest(snapshots: readonly FoldSnapshot[]): number {
  if (snapshots.length < 3) return 0;
  let best = 1;
  let bestGap: bigint | undefined;
  for (let i = 1; i < snapshots.length - 1; i++) {
    const gap = snapshots[i + 1].position - snapshots[i - 1].position;
    if (bestGap === undefined || gap < bestGap) {
      best = i;
      bestGap = gap;
    }
  }
  return best;
}

/** The key of the skips a fold honours: same skips, same folds. */
export function skipsKeyOf(
  names: readonly string[],
  skips: ReadonlyMap<string, ReadonlySet<bigint>> | undefined,
): string {
  return names
    .map((name) => {
      const positions = [...(skips?.get(name) ?? [])].sort((a, b) => (a < b ? -1 : 1));
      return `${name}:${positions.join(',')}`;
    })
    .join(';');
}
