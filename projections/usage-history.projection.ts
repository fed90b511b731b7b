import type { RecordedEvent } from '../src/event-store/event-store.port';
import { SubscriptionStatus, usageFigures } from '../src/subscription/subscription.decider';
import {
  DocumentChange,
  DocumentSnapshot,
  key,
  Projection,
  put,
  ReadModelReader,
} from '../src/projection-engine/projection';
import { licenseFiguresAfter } from './license-figures';

/*
 * License usage over time (GET /v1/firms/{firmId}/mfa/usage/history), for
 * the admin page's chart of seats in use against the license count. From the
 * firm's subscription stream, with license-usage's rules exactly (a seat
 * counts once per user, a release of a seat not held changes nothing, a
 * cancelled subscription keeps its count and seats), so the last point is
 * what GET /mfa/usage answers.
 *
 *   current  one per firm: the figures now, how many points, the last point's time
 *   seats    one per seat holder, as in license-usage (the dedup rule)
 *   points   one per change of the figures or status, never rewritten:
 *            { at, position, seatsInUse, licenseCount, status }, id
 *            `{firmId}/{seq}` with seq (0, 1, 2, …) zero-padded, so the ids of
 *            a firm sort in log order.
 *
 * `at` is the event's occurredAt, except that it never runs backwards: an
 * event decided on an instance whose clock is behind the previous one's
 * takes the previous point's time. Along a firm's points, then, log order
 * and time order agree, and a time window is one run of seqs, found on the
 * (firmId, at) index. Events of one subscription stream are decided one
 * after the other (each append expects the revision the decision read), so
 * this only irons out clock skew between instances.
 */

export interface UsageHistoryCurrent {
  firmId: string;
  status: SubscriptionStatus;
  licenseCount: number;
  seatsInUse: number;
  /** How many points the firm has; the next point's seq. */
  points: number;
  /** The last point's `at`; null before the first. */
  at: string | null;
}

export interface UsagePointDoc {
  firmId: string;
  seq: number;
  /** ISO time, non-decreasing along the firm's points. */
  at: string;
  /** The global log position of the event, as decimal text. */
  position: string;
  seatsInUse: number;
  licenseCount: number;
  status: SubscriptionStatus;
}

/** Room for 10^12 changes per firm in a fixed-width, sortable id. */
const SEQ_DIGITS = 12;
const pointId = (firmId: string, seq: number) => key(firmId, String(seq).padStart(SEQ_DIGITS, '0'));
/** Sorts after every point id of the firm ('~' is above the digits). */
const afterAllPoints = (firmId: string) => key(firmId, '~');

/** The events that move a figure; a request moves none (status only, no point wanted). */
const POINT_EVENTS: ReadonlySet<string> = new Set([
  'SubscriptionActivated',
  'LicenseCountChanged',
  'SubscriptionCancelled',
  'SeatAssigned',
  'SeatReleased',
]);

export const usageHistoryProjection: Projection = {
  name: 'usage-history',
  version: 1,
  collections: [
    { name: 'current', fields: [], indexes: [] },
    { name: 'seats', fields: [], indexes: [] },
    {
      name: 'points',
      fields: ['firmId', 'at'],
      indexes: [
        ['firmId', 'id'],
        ['firmId', 'at', 'id'],
      ],
    },
  ],
  handles: [...POINT_EVENTS],

  evolve(event: RecordedEvent, documents: DocumentSnapshot): DocumentChange[] {
    const firmId = event.metadata.firmId;
    const current = documents.get<UsageHistoryCurrent>('current', firmId) ?? {
      firmId,
      status: 'none',
      licenseCount: 0,
      seatsInUse: 0,
      points: 0,
      at: null,
    };
    if (!POINT_EVENTS.has(event.type)) return [];
    const moved = licenseFiguresAfter(event, current, documents);
    if (!moved) return [];
    const { figures: next, changes } = moved;
    const at = pointTime(event, current.at);
    const point: UsagePointDoc = {
      firmId,
      seq: current.points,
      at,
      position: String(event.position),
      seatsInUse: next.seatsInUse,
      licenseCount: next.licenseCount,
      status: next.status,
    };
    const after: UsageHistoryCurrent = {
      firmId,
      status: next.status,
      licenseCount: next.licenseCount,
      seatsInUse: next.seatsInUse,
      points: current.points + 1,
      at,
    };
    return [
      ...changes,
      put('points', pointId(firmId, point.seq), point),
      put('current', firmId, after),
    ];
  },
};

/**
 * The event's time as `toISOString()` text, never before `previous`. A time
 * that cannot be read takes `previous` (the epoch for a first point) rather
 * than throwing: a quarantined seat event would make these figures part
 * from license usage's for good.
 */
function pointTime(event: RecordedEvent, previous: string | null): string {
  const ms = Date.parse(event.metadata.occurredAt);
  const own = Number.isNaN(ms) ? null : new Date(ms).toISOString();
  if (own === null) return previous ?? new Date(0).toISOString();
  return previous !== null && previous > own ? previous : own;
}

/** One point of the chart: the figures right after a change, or as they stood at `from`. */
export interface UsagePoint {
  /** ISO time. */
  at: string;
  /** The log position of the change, as decimal text; "0" for a start before any change. */
  position: string;
  seatsInUse: number;
  licenseCount: number;
  /** As GET /mfa/usage computes it (`usageFigures`): floor(100 * seats / count), 0 without licenses. */
  usagePercent: number;
}

export interface UsageHistory {
  /** ISO time: the window's start as asked, else the first point's time (or `to` without points). */
  from: string;
  /** ISO time: the window's end as asked, else now. */
  to: string;
  /** The figures now, as GET /mfa/usage answers them. */
  licenseCount: number;
  seatsInUse: number;
  points: UsagePoint[];
}

/** The most points one answer holds (the chart's resolution). */
export const MAX_USAGE_POINTS = 1000;
/** Points read from the store per query while scanning a window. */
const PAGE = 1000;

/**
 * The firm's usage over a window of time, in log order, at most
 * MAX_USAGE_POINTS points.
 *
 * `window.from` / `window.to` are milliseconds since the epoch (`to` at or
 * after `from`); `now` stands in for a missing `to` in the answer only: with
 * no `to`, every point up to the last is kept, whatever its time, so the
 * last point always equals GET /mfa/usage. With `from`, the first point is
 * the state as it stood at `from` (the last change at or before it), timed
 * `from`, so the chart's line starts at the right height; then the changes
 * after `from` and at or before `to`.
 *
 * When more changes fall in the window than fit, the window's time range is
 * cut into equal buckets and each keeps its point of highest usagePercent
 * (the earliest of equals), so a crossing of 80 % or 100 % is never hidden;
 * the window's last point is always kept. Reads the window's points in pages:
 * the cost grows with the changes in the window, not with the answer.
 *
 * A firm without any change: its figures are 0 and `points` is empty.
 */
export async function usageHistory(
  reader: ReadModelReader,
  firmId: string,
  window: { from?: number; to?: number; now: number },
): Promise<UsageHistory> {
  const iso = (ms: number) => new Date(ms).toISOString();
  const to = iso(window.to ?? window.now);
  const current = await reader.get<UsageHistoryCurrent>('current', firmId);
  if (!current || current.points === 0) {
    return {
      from: window.from === undefined ? to : iso(window.from),
      to,
      licenseCount: 0,
      seatsInUse: 0,
      points: [],
    };
  }
  const firstAfter = async (ms: number): Promise<number> => {
    const [found] = await reader.find<UsagePointDoc>('points', {
      equals: { firmId },
      orderBy: ['at', 'id'],
      after: [iso(ms), afterAllPoints(firmId)],
      limit: 1,
    });
    return found ? found.seq : current.points;
  };
  // The window's changes are the seqs [start, end).
  const start = window.from === undefined ? 0 : await firstAfter(window.from);
  const end = window.to === undefined ? current.points : await firstAfter(window.to);

  const points: UsagePoint[] = [];
  if (window.from !== undefined) {
    const before =
      start > 0 ? await reader.get<UsagePointDoc>('points', pointId(firmId, start - 1)) : undefined;
    points.push({
      ...chartPoint(before ?? { at: '', position: '0', seatsInUse: 0, licenseCount: 0 }),
      at: iso(window.from),
    });
  }
  const budget = MAX_USAGE_POINTS - points.length;
  const changes = end - start;
  if (changes <= budget) {
    for await (const doc of pointsBetween(reader, firmId, start, end)) points.push(chartPoint(doc));
  } else {
    points.push(...(await downsample(reader, firmId, start, end, budget)));
  }
  return {
    from: window.from === undefined ? (points[0]?.at ?? to) : iso(window.from),
    to,
    licenseCount: current.licenseCount,
    seatsInUse: current.seatsInUse,
    points,
  };
}

function chartPoint(
  doc: Pick<UsagePointDoc, 'at' | 'position' | 'seatsInUse' | 'licenseCount'>,
): UsagePoint {
  return {
    at: doc.at,
    position: doc.position,
    seatsInUse: doc.seatsInUse,
    licenseCount: doc.licenseCount,
    usagePercent: usageFigures(doc.licenseCount, doc.seatsInUse).usagePercent,
  };
}

/** The points of seqs [start, end), in log order, a page at a time. */
async function* pointsBetween(
  reader: ReadModelReader,
  firmId: string,
  start: number,
  end: number,
): AsyncGenerator<UsagePointDoc> {
  let next = start;
  while (next < end) {
    const page = await reader.find<UsagePointDoc>('points', {
      equals: { firmId },
      orderBy: ['id'],
      after: next > 0 ? [pointId(firmId, next - 1)] : undefined,
      limit: Math.min(PAGE, end - next),
    });
    if (page.length === 0) return;
    for (const doc of page) yield doc;
    next = page[page.length - 1].seq + 1;
  }
}

/**
 * `budget` points of seqs [start, end): `budget - 1` time buckets over the
 * range from the first to the last of them, each keeping its highest
 * usagePercent, and the last point.
 */
async function downsample(
  reader: ReadModelReader,
  firmId: string,
  start: number,
  end: number,
  budget: number,
): Promise<UsagePoint[]> {
  const [first] = await collect(pointsBetween(reader, firmId, start, start + 1));
  const [last] = await collect(pointsBetween(reader, firmId, end - 1, end));
  const t0 = Date.parse(first.at);
  const span = Date.parse(last.at) - t0;
  const buckets = budget - 1;
  const kept = new Map<number, { seq: number; point: UsagePoint }>();
  for await (const doc of pointsBetween(reader, firmId, start, end - 1)) {
    const bucket =
      span > 0
        ? Math.min(buckets - 1, Math.floor(((Date.parse(doc.at) - t0) / span) * buckets))
        : 0;
    const point = chartPoint(doc);
    const best = kept.get(bucket);
    if (!best || point.usagePercent > best.point.usagePercent) {
      kept.set(bucket, { seq: doc.seq, point });
    }
  }
  return [...kept.values()]
    .sort((a, b) => a.seq - b.seq)
    .map((k) => k.point)
    .concat(chartPoint(last));
}

async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const all: T[] = [];
  for await (const item of items) all.push(item);
  return all;
}
