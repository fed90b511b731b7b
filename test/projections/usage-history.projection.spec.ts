import { licenseUsage, licenseUsageProjection } from '../../projections/license-usage.projection';
import {
  MAX_USAGE_POINTS,
  usageHistory,
  usageHistoryProjection,
} from '../../projections/usage-history.projection';
import { FoldDocuments, InMemoryReadModel } from '../../src/audit/in-memory-read-model';
import type { RecordedEvent } from '../../src/event-store/event-store.port';
import { project } from '../../src/projection-engine/projection';
import type { SubscriptionEvent } from '../../src/subscription/subscription.decider';
import { cancelled, requested, T } from './events';
import { event, projectionSpec, recorded } from './projection-spec';

/*
 * Usage over time (the admin page's chart), from the firm's subscription
 * stream: one point per change of the license count, the status or the seats
 * in use, with license-usage's seat rules, so the last point is what
 * GET /mfa/usage answers.
 */
const spec = projectionSpec(usageHistoryProjection);
const subscription = (e: SubscriptionEvent, firmId = 'acme') => recorded(e, firmId);
/** The event as decided at `at` (metadata.occurredAt). */
const at = (occurredAt: string, e: RecordedEvent): RecordedEvent => ({
  ...e,
  metadata: { ...e.metadata, occurredAt },
});

const activated = (licenseCount: number, firmId = 'acme') =>
  subscription(
    { type: 'SubscriptionActivated', data: { plan: 'standard', licenseCount, activatedAt: T } },
    firmId,
  );
const countChanged = (licenseCount: number, previousLicenseCount: number) =>
  subscription({
    type: 'LicenseCountChanged',
    data: { licenseCount, previousLicenseCount, seatsInUse: 0, forced: false, changedAt: T },
  });
const seatAssigned = (userId: string, firmId = 'acme') =>
  subscription(
    {
      type: 'SeatAssigned',
      data: { userId, assignedAt: T, generation: 0, enrollmentId: `enr-${userId}` },
    },
    firmId,
  );
const seatReleased = (userId: string) =>
  subscription({
    type: 'SeatReleased',
    data: { userId, reason: 'enrollment-reset', releasedAt: T, generation: 0 },
  });

const point = (
  seq: number,
  e: RecordedEvent,
  status: string,
  licenseCount: number,
  seatsInUse: number,
  firmId = 'acme',
) => ({
  [`${firmId}/${String(seq).padStart(12, '0')}`]: {
    firmId,
    seq,
    at: e.metadata.occurredAt,
    position: String(e.position),
    seatsInUse,
    licenseCount,
    status,
  },
});

describe('Usage history projection', () => {
  it('records one point per change, each with the figures right after it', () => {
    const active = at('2026-01-15T09:00:00.000Z', activated(10));
    const ann = at('2026-01-15T10:00:00.000Z', seatAssigned('u-ann'));
    const more = at('2026-01-16T10:00:00.000Z', countChanged(20, 10));
    const reset = at('2026-01-17T10:00:00.000Z', seatReleased('u-ann'));
    const stop = at('2026-01-18T10:00:00.000Z', cancelled);
    spec
      .given([requested, active, ann, more, reset])
      .when(stop)
      .then({
        points: {
          ...point(0, active, 'active', 10, 0),
          ...point(1, ann, 'active', 10, 1),
          ...point(2, more, 'active', 20, 1),
          ...point(3, reset, 'active', 20, 0),
          ...point(4, stop, 'cancelled', 20, 0),
        },
        current: {
          acme: {
            firmId: 'acme',
            status: 'cancelled',
            licenseCount: 20,
            seatsInUse: 0,
            points: 5,
            at: '2026-01-18T10:00:00.000Z',
          },
        },
        seats: {},
      });
  });

  it('counts a seat once per user, as license usage does: a repeat or a stray release adds no point', () => {
    spec
      .given([activated(10), seatAssigned('u-1')])
      .when(seatAssigned('u-1'))
      .thenNothingChanges();
    spec
      .given([activated(10)])
      .when(seatReleased('u-1'))
      .thenNothingChanges();
  });

  it('never lets time run backwards along a firm’s points (clock skew between instances)', () => {
    const first = at('2026-01-15T10:00:00.000Z', activated(10));
    const skewed = at('2026-01-15T09:59:59.990Z', seatAssigned('u-1'));
    const documents = project(usageHistoryProjection, [first, skewed]);
    expect(documents.collection('points')['acme/000000000001']).toMatchObject({
      at: '2026-01-15T10:00:00.000Z',
      seatsInUse: 1,
    });
  });

  it('keeps each firm apart, its points keyed by its firm id first', () => {
    const documents = project(usageHistoryProjection, [
      activated(10),
      seatAssigned('u-1'),
      activated(5, 'globex'),
    ]);
    expect(Object.keys(documents.collection('points')).sort()).toEqual([
      'acme/000000000000',
      'acme/000000000001',
      'globex/000000000000',
    ]);
    expect(documents.collection('current').globex).toMatchObject({ points: 1, seatsInUse: 0 });
  });

  it('agrees with license usage after any sequence of subscription events', async () => {
    // A deterministic walk over every handled type, repeats and stray releases included.
    const events: RecordedEvent[] = [requested, activated(3)];
    let seed = 7;
    const next = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31);
    for (let i = 0; i < 400; i++) {
      const user = `u-${next() % 6}`;
      const pick = next() % 10;
      if (pick < 4) events.push(seatAssigned(user));
      else if (pick < 7) events.push(seatReleased(user));
      else if (pick < 8) events.push(countChanged(next() % 8, 0));
      else if (pick < 9) events.push(cancelled);
      else events.push(activated(next() % 8));
    }
    const history = new FoldDocuments();
    const usage = new FoldDocuments();
    for (const e of events) {
      if (usageHistoryProjection.handles.includes(e.type)) {
        history.apply(usageHistoryProjection.evolve(e, history));
      }
      if (licenseUsageProjection.handles.includes(e.type)) {
        usage.apply(licenseUsageProjection.evolve(e, usage));
      }
      const now = await licenseUsage(
        new InMemoryReadModel(usage, licenseUsageProjection.collections),
        'acme',
      );
      const answer = await usageHistory(
        new InMemoryReadModel(history, usageHistoryProjection.collections),
        'acme',
        { now: Date.parse(T) },
      );
      expect({ licenseCount: answer.licenseCount, seatsInUse: answer.seatsInUse }).toEqual({
        licenseCount: now.licenseCount,
        seatsInUse: now.seatsInUse,
      });
      const last = answer.points[answer.points.length - 1];
      if (last) {
        expect(last).toMatchObject({
          licenseCount: now.licenseCount,
          seatsInUse: now.seatsInUse,
          usagePercent: now.usagePercent,
        });
      }
    }
  });

  it('is not given an event of a type it does not handle, which would change nothing', () => {
    spec.passesOver(event('SubscriptionRenamed', { name: 'premium' }), [activated(10)]);
    spec.passesOver(requested);
  });

  it('throws on an event it cannot use, which the engine quarantines', () => {
    spec
      .given([])
      .when(event('LicenseCountChanged', { licenseCount: 1.5 }))
      .thenThrows('LicenseCountChanged.licenseCount is not a count');
    spec
      .given([])
      .when(event('SeatReleased', { reason: 'r', releasedAt: T, generation: 0 }))
      .thenThrows('SeatReleased.userId is not a string');
  });
});

describe('Usage history query', () => {
  const minute = 60_000;
  const t0 = Date.parse('2026-03-01T00:00:00.000Z');
  const iso = (ms: number) => new Date(ms).toISOString();

  /** The answer over the documents the events fold into. */
  function historyOf(events: RecordedEvent[]) {
    const documents = new FoldDocuments();
    for (const e of events) documents.apply(usageHistoryProjection.evolve(e, documents));
    const reader = new InMemoryReadModel(documents, usageHistoryProjection.collections);
    return (window: { from?: number; to?: number; now?: number }) =>
      usageHistory(reader, 'acme', { now: t0 + 1000 * minute, ...window });
  }

  // Licenses at t0, then a seat a minute: 10 licenses, 4 seats by t0+4min.
  const events = [
    at(iso(t0), activated(10)),
    ...[1, 2, 3, 4].map((m) => at(iso(t0 + m * minute), seatAssigned(`u-${m}`))),
  ];

  it('starts a window at the usage as it stood at `from`, timed `from`', async () => {
    const history = historyOf(events);
    const answer = await history({ from: t0 + 2 * minute + 30_000, to: t0 + 4 * minute });
    expect(answer.from).toBe(iso(t0 + 2 * minute + 30_000));
    expect(answer.to).toBe(iso(t0 + 4 * minute));
    expect(answer.points.map((p) => [p.at, p.seatsInUse, p.usagePercent])).toEqual([
      [iso(t0 + 2 * minute + 30_000), 2, 20],
      [iso(t0 + 3 * minute), 3, 30],
      [iso(t0 + 4 * minute), 4, 40],
    ]);
    // The start point is the change it stands for: its position, another time.
    expect(answer.points[0].position).toBe(String(events[2].position));
    expect(answer.licenseCount).toBe(10);
    expect(answer.seatsInUse).toBe(4);
  });

  it('counts a change at exactly `from` in the start point, and one at exactly `to` in the window', async () => {
    const history = historyOf(events);
    const answer = await history({ from: t0 + minute, to: t0 + 3 * minute });
    expect(answer.points.map((p) => p.seatsInUse)).toEqual([1, 2, 3]);
  });

  it('starts at zero before the first change, and answers everything without a window', async () => {
    const history = historyOf(events);
    const before = await history({ from: t0 - minute, to: t0 });
    expect(before.points.map((p) => [p.position, p.licenseCount, p.seatsInUse])).toEqual([
      ['0', 0, 0],
      [String(events[0].position), 10, 0],
    ]);
    const all = await history({});
    expect(all.from).toBe(iso(t0));
    expect(all.to).toBe(iso(t0 + 1000 * minute));
    expect(all.points).toHaveLength(5);
  });

  it('answers a firm without changes with zero figures and no points', async () => {
    const answer = await historyOf([])({ from: t0, to: t0 + minute });
    expect(answer).toEqual({
      from: iso(t0),
      to: iso(t0 + minute),
      licenseCount: 0,
      seatsInUse: 0,
      points: [],
    });
  });

  it('downsamples to 1,000 points, keeping each bucket’s peak, the crossing of 80 %, and the last point', async () => {
    // 100 licenses; 3,000 changes a second apart, seats going up and down
    // between 70 and 79 (%), but once, in the middle, a seat taken and given
    // back within the same millisecond as the change before: 80 % for an
    // instant, neither first nor last of its time bucket.
    const many: RecordedEvent[] = [at(iso(t0), activated(100))];
    const held: string[] = [];
    let clock = t0;
    const assign = (userId: string, step = 1000) => {
      held.push(userId);
      many.push(at(iso((clock += step)), seatAssigned(userId)));
    };
    const release = (step = 1000) =>
      many.push(at(iso((clock += step)), seatReleased(held.shift()!)));
    for (let i = 1; i <= 70; i++) assign(`u-${i}`);
    let up = true;
    for (let i = 0; many.length < 3000; i++) {
      if (held.length === 79) up = false;
      if (held.length === 70) up = true;
      if (up) assign(`v-${i}`);
      else release();
      if (i === 1500) {
        while (held.length < 79) assign(`w-${held.length}`);
        assign('spike', 0);
        release(0);
      }
    }
    const all = historyOf(many);
    const full = await all({});
    expect(full.points.length).toBeLessThanOrEqual(MAX_USAGE_POINTS);
    expect(full.points.length).toBeGreaterThan(900);
    expect(Math.max(...full.points.map((p) => p.usagePercent))).toBe(80);
    const last = full.points[full.points.length - 1];
    expect(last.position).toBe(String(many[many.length - 1].position));
    expect(last.seatsInUse).toBe(full.seatsInUse);
    const positions = full.points.map((p) => BigInt(p.position));
    expect([...positions].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))).toEqual(positions);

    const windowed = await all({ from: t0 + 10_000, to: clock });
    expect(windowed.points.length).toBeLessThanOrEqual(MAX_USAGE_POINTS);
    expect(windowed.points[0]).toMatchObject({ at: iso(t0 + 10_000), seatsInUse: 10 });
    expect(Math.max(...windowed.points.map((p) => p.usagePercent))).toBe(80);
  });
});
