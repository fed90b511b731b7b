import { ALL_PROJECTIONS } from '../../projections';
import { EnrolledUser, enrolledUsers } from '../../projections/enrolled-users.projection';
import { LicenseUsage, licenseUsage } from '../../projections/license-usage.projection';
import { RoleCounters, roleCounters } from '../../projections/role-counters.projection';
import type { EventStore, RecordedEvent } from '../event-store/event-store.port';
import { upcasters } from '../event-store/upcasting';
import type { Projection } from '../projection-engine/projection';
import { readableEvent } from '../projection-engine/quarantine';
import { occurredAtOf } from './audit-query';
import { FoldDocuments, InMemoryReadModel } from './in-memory-read-model';
import { skipsKeyOf, StateSnapshots } from './state-snapshots';

/** The read models the state answers from, by projection name. */
const STATE_READ_MODELS = ['license-usage', 'role-counters', 'enrolled-users'] as const;

/** Events read from the store per page while folding. */
const FOLD_PAGE_SIZE = 1000;

/** What `GET /v1/audit/firms/{firmId}/state` answers (API.md "Audit"). */
export interface FirmStateAsOf {
  /** The moment asked for, as `toISOString()`. */
  asOf: string;
  /**
   * The log position of the last event folded (applied or passed over), "0"
   * when none: the state is the live read models' as they stood once the
   * projections had processed this position.
   */
  position: string;
  /** As GET /v1/firms/{firmId}/mfa/usage answered then. */
  usage: LicenseUsage;
  /** As GET /v1/firms/{firmId}/mfa/counters answered then. */
  counters: RoleCounters;
  /** Every item GET /v1/firms/{firmId}/mfa/enrolled-users listed then, in its order. */
  enrolledUsers: EnrolledUser[];
}

export interface StateAsOfOptions {
  /** The projections to fold through (the service's own by default). */
  projections?: readonly Projection[];
  /** Positions an operator told a projection to do without (`npm run projections -- skip`), by projection. */
  skips?: ReadonlyMap<string, ReadonlySet<bigint>>;
  /** Where to resume from and keep folds (the service keeps one for its lifetime). */
  snapshots?: StateSnapshots;
}

/**
 * A firm's dashboards as they stood at `asOf` (milliseconds since the epoch),
 * rebuilt from the log by the live read models' own projections and queries
 * (docs/audit.md "The state as of a moment").
 *
 * Which events: the firm's events of the types these projections read, in log
 * order, up to the first that occurred after `asOf` (`metadata.occurredAt`).
 * That is a prefix of the log, so the answer is a state the live read models
 * really held, even when two instances' clocks disagree; an event that
 * occurred before `asOf` but was logged after a later one is left out with
 * everything after it. An event whose time cannot be read does not end the
 * prefix (no consumer can apply it: it is passed over, as the engine
 * quarantines it).
 *
 * How: each event goes through `readableEvent` (unreadable or not upcastable:
 * passed over), then through each projection that handles its type, into
 * documents in memory; an event a projection throws on, or an operator
 * skipped, changes nothing of that projection, as in the live engine. The
 * answer is read by the dashboards' query functions over those documents.
 *
 * Cost: one read of the firm's events of those types and one fold, from the
 * latest snapshot whose events all occurred by `asOf` when `snapshots` holds
 * one (StateSnapshots); memory in proportion to the firm's documents.
 * docs/audit.md gives the times measured for a firm with 100,000 events.
 */
export async function stateAsOf(
  store: EventStore,
  firmId: string,
  asOf: number,
  options: StateAsOfOptions = {},
): Promise<FirmStateAsOf> {
  const available = options.projections ?? ALL_PROJECTIONS;
  const projections = STATE_READ_MODELS.map((name) => {
    const projection = available.find((candidate) => candidate.name === name);
    if (!projection) throw new Error(`No projection ${name}`);
    return projection;
  });
  const skipsKey = skipsKeyOf(STATE_READ_MODELS, options.skips);
  const snapshots = options.snapshots;
  const start = snapshots?.usable(firmId, skipsKey, asOf);
  const folds = projections.map((projection, index) => ({
    projection,
    handles: new Set(projection.handles),
    skips: options.skips?.get(projection.name) ?? new Set<bigint>(),
    // A snapshot's documents stay as they are: the fold goes on in a copy, made
    // when the first event changes them (none may follow the snapshot).
    documents: start ? start.documents[index] : new FoldDocuments(),
    shared: start !== undefined,
  }));
  const types = upcasters.storedTypes(projections.flatMap((projection) => projection.handles));
  let position = start?.position ?? 0n;
  let maxOccurredAt = start?.maxOccurredAt ?? Number.NEGATIVE_INFINITY;
  let folded = 0;
  let after = position;
  read: for (;;) {
    const page = await store.readFirm(firmId, { after, maxCount: FOLD_PAGE_SIZE, types });
    if (page.through === after) break;
    for (const recorded of page.events) {
      const occurred = occurredAtOf(recorded.metadata);
      if (occurred !== undefined && occurred > asOf) break read;
      if (occurred !== undefined && occurred > maxOccurredAt) maxOccurredAt = occurred;
      position = recorded.position;
      applyToFolds(folds, recorded);
      if (snapshots && ++folded % snapshots.every === 0) {
        snapshots.keep(firmId, skipsKey, {
          position,
          maxOccurredAt,
          // Shared documents are a kept snapshot's already; the others go on changing.
          documents: folds.map((fold) => (fold.shared ? fold.documents : fold.documents.copy())),
        });
      }
    }
    after = page.through;
  }
  // The fold is over: its documents are only read from now on, and may be kept as they are.
  if (snapshots && position > (start?.position ?? 0n)) {
    snapshots.keep(firmId, skipsKey, {
      position,
      maxOccurredAt,
      documents: folds.map((fold) => fold.documents),
    });
  }
  const [usage, counters, enrolled] = folds.map(
    (fold) => new InMemoryReadModel(fold.documents, fold.projection.collections),
  );
  const entries = folds[2].documents.size('entries');
  return {
    asOf: new Date(asOf).toISOString(),
    position: position.toString(),
    usage: await licenseUsage(usage, firmId),
    counters: await roleCounters(counters, firmId),
    enrolledUsers: (await enrolledUsers(enrolled, firmId, { limit: Math.max(1, entries) })).items,
  };
}

interface Fold {
  projection: Projection;
  handles: ReadonlySet<string>;
  skips: ReadonlySet<bigint>;
  documents: FoldDocuments;
  /** `documents` are a kept snapshot's: copy them before changing them. */
  shared: boolean;
}

/** One event through every read model that reads it, as the engine applies it (apply-batch.ts). */
function applyToFolds(folds: readonly Fold[], recorded: RecordedEvent): void {
  const event = readableEvent(recorded);
  if (typeof event === 'string') return;
  for (const fold of folds) {
    if (!fold.handles.has(event.type) || fold.skips.has(recorded.position)) continue;
    try {
      const changes = fold.projection.evolve(event, fold.documents);
      if (changes.length === 0) continue;
      if (fold.shared) {
        fold.documents = fold.documents.copy();
        fold.shared = false;
      }
      fold.documents.apply(changes);
    } catch {
      // The engine quarantines it for this projection: none of its changes.
    }
  }
}
