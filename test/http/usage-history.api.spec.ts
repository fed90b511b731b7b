import { EVENT_STORE, EventStore, NewEvent } from '../../src/event-store/event-store.port';
import { streams } from '../../src/shared/ids';
import { Api, RunningService, startService, TestClock, token } from '../support/harness';
import { newEvent } from '../support/log-events';
import {
  activeFirm,
  enrollTotp,
  expectOk,
  host,
  mfaPath,
  operator,
  registerUser,
  superuserOf,
} from '../support/mfa';

/*
 * GET /v1/firms/{firmId}/mfa/usage/history over HTTP, on the real SQLite
 * stores and the TestClock: users enroll over hours, an operator changes the
 * license count, a superuser resets a user and the host deactivates one; the
 * chart's points follow, each read with the position the command answered.
 */
describe('Usage history', () => {
  const T0 = Date.parse('2026-01-15T09:00:00.000Z');
  const hour = 3_600_000;
  const iso = (ms: number) => new Date(ms).toISOString();
  let clock: TestClock;
  let service: RunningService;
  let api: Api;

  beforeAll(async () => {
    clock = new TestClock(new Date(T0));
    service = await startService({ clock });
    api = service.api;
  });
  afterAll(() => service.stop());

  const history = (firmId: string, query = '', caller = operator) =>
    api.get(`/v1/firms/${firmId}/mfa/usage/history${query}`, caller);

  /** Five licenses at T0; Ann, Bob and Cy enroll an hour apart; three licenses; a reset; a deactivation. */
  async function story(firmId: string): Promise<string> {
    await activeFirm(api, firmId, 5);
    for (const userId of ['ann', 'bob', 'cy']) await registerUser(api, firmId, userId);
    clock.advance(hour);
    await enrollTotp(api, firmId, 'ann', clock.now());
    clock.advance(hour);
    await enrollTotp(api, firmId, 'bob', clock.now());
    clock.advance(hour);
    expectOk(await api.put(`/v1/firms/${firmId}/mfa/licenses`, operator, { licenseCount: 3 }));
    clock.advance(hour);
    await enrollTotp(api, firmId, 'cy', clock.now());
    clock.advance(hour);
    const reset = await api.post(`${mfaPath(firmId, 'ann')}/reset`, superuserOf(firmId), {
      reason: 'lost phone',
    });
    expectOk(reset);
    clock.advance(hour);
    const deactivated = await api.post(`/v1/firms/${firmId}/users/bob/deactivate`, host, {
      reason: 'record-inactivated',
    });
    expectOk(deactivated);
    return deactivated.body.position as string;
  }

  it('charts every change of seats and licenses, the last point being GET /mfa/usage', async () => {
    const position = await story('acme');
    const answer = await history('acme', `?minPosition=${position}`);
    expect(answer.status).toBe(200);
    const figures = (p: { at: string; seatsInUse: number; licenseCount: number }) => [
      p.at,
      p.seatsInUse,
      p.licenseCount,
    ];
    expect(answer.body.points.map(figures)).toEqual([
      [iso(T0), 0, 5],
      [iso(T0 + hour), 1, 5],
      [iso(T0 + 2 * hour), 2, 5],
      [iso(T0 + 3 * hour), 2, 3],
      [iso(T0 + 4 * hour), 3, 3],
      [iso(T0 + 5 * hour), 2, 3],
      [iso(T0 + 6 * hour), 1, 3],
    ]);
    expect(answer.body.points.map((p: { usagePercent: number }) => p.usagePercent)).toEqual([
      0, 20, 40, 66, 100, 66, 33,
    ]);
    expect(Object.keys(answer.body).sort()).toEqual([
      'from',
      'licenseCount',
      'points',
      'seatsInUse',
      'to',
    ]);
    expect(Object.keys(answer.body.points[0]).sort()).toEqual([
      'at',
      'licenseCount',
      'position',
      'seatsInUse',
      'usagePercent',
    ]);
    expect(answer.body.from).toBe(iso(T0));
    expect(answer.body.to).toBe(clock.now().toISOString());

    // Each point is the change in the log that made it.
    const changes = (await service.events()).filter(
      (e) =>
        e.streamId === streams.subscription('acme') &&
        ['SubscriptionActivated', 'LicenseCountChanged', 'SeatAssigned', 'SeatReleased'].includes(
          e.type,
        ),
    );
    expect(answer.body.points.map((p: { position: string }) => p.position)).toEqual(
      changes.map((e) => String(e.position)),
    );

    const usage = await api.get(`/v1/firms/acme/mfa/usage?minPosition=${position}`, operator);
    const last = answer.body.points[answer.body.points.length - 1];
    expect({
      licenseCount: last.licenseCount,
      seatsInUse: last.seatsInUse,
      usagePercent: last.usagePercent,
    }).toEqual({
      licenseCount: usage.body.licenseCount,
      seatsInUse: usage.body.seatsInUse,
      usagePercent: usage.body.usagePercent,
    });
    expect({ licenseCount: answer.body.licenseCount, seatsInUse: answer.body.seatsInUse }).toEqual({
      licenseCount: usage.body.licenseCount,
      seatsInUse: usage.body.seatsInUse,
    });
    // The firm's own superuser reads it too.
    const own = await history('acme', '', superuserOf('acme'));
    expect(own.status).toBe(200);
    expect(own.body).toEqual(answer.body);
  });

  it('starts a window at the usage as it stood at `from`, and ends it at `to`', async () => {
    const from = iso(T0 + 1.5 * hour);
    const to = iso(T0 + 3.5 * hour);
    const answer = await history('acme', `?from=${from}&to=${to}`);
    expect(answer.status).toBe(200);
    expect(answer.body.from).toBe(from);
    expect(answer.body.to).toBe(to);
    expect(
      answer.body.points.map((p: { at: string; seatsInUse: number; licenseCount: number }) => [
        p.at,
        p.seatsInUse,
        p.licenseCount,
      ]),
    ).toEqual([
      [from, 1, 5],
      [iso(T0 + 2 * hour), 2, 5],
      [iso(T0 + 3 * hour), 2, 3],
    ]);
    // The current figures, whatever the window.
    expect(answer.body).toMatchObject({ licenseCount: 3, seatsInUse: 1 });

    // An offset and a date alone are moments too; `to` is inclusive.
    const offset = await history('acme', `?from=2026-01-15T10:00:00%2B01:00&to=${iso(T0)}`);
    expect(offset.status).toBe(200);
    expect(offset.body.points.map((p: { seatsInUse: number }) => p.seatsInUse)).toEqual([0]);
    const dated = await history('acme', '?from=2026-01-14');
    expect(dated.body.points[0]).toEqual({
      at: '2026-01-14T00:00:00.000Z',
      position: '0',
      seatsInUse: 0,
      licenseCount: 0,
      usagePercent: 0,
    });
    expect(dated.body.points).toHaveLength(8);
  });

  it('answers a firm never seen with zero figures and no points', async () => {
    const answer = await history('nobody');
    expect(answer.status).toBe(200);
    expect(answer.body).toEqual({
      from: clock.now().toISOString(),
      to: clock.now().toISOString(),
      licenseCount: 0,
      seatsInUse: 0,
      points: [],
    });
  });

  it('keeps firms apart: firm B sees nothing of firm A, and A’s superuser cannot read B', async () => {
    const globex = await history('globex', '', superuserOf('globex'));
    expect(globex.status).toBe(200);
    expect(globex.body).toMatchObject({ licenseCount: 0, seatsInUse: 0, points: [] });
    const crossed = await history('globex', '', superuserOf('acme'));
    expect(crossed.status).toBe(403);
    expect(crossed.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(crossed.text).not.toMatch(/"points"|seatsInUse/);
    for (const caller of [host, token('user', { firm: 'acme', sub: 'ann' }), token('auditor')]) {
      expect((await history('acme', '', caller)).status).toBe(403);
    }
  });

  it('refuses a caller without a token', async () => {
    const answer = await api.get('/v1/firms/acme/mfa/usage/history');
    expect(answer.status).toBe(401);
    expect(answer.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(answer.text).not.toMatch(/"points"/);
  });

  it('refuses bad input with a problem naming the field', async () => {
    const cases: Array<[string, string]> = [
      ['?from=yesterday', 'from'],
      ['?from=2026-02-30', 'from'],
      ['?to=2026-01-15T09:00:00', 'to'],
      ['?from=2026-01-16&to=2026-01-15', 'to'],
      [`?from=${iso(T0 + 1000 * hour)}`, 'from'],
      ['?from=2026-01-15&from=2026-01-16', 'from'],
      ['?points=5', 'points'],
      ['?minPosition=abc', 'minPosition'],
    ];
    for (const [query, field] of cases) {
      const answer = await history('acme', query);
      expect([query, answer.status]).toEqual([query, 400]);
      expect(answer.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      expect(answer.body.errors.map((e: { field: string }) => e.field)).toContain(field);
      expect(answer.text).not.toMatch(/\bat \S+\.(js|ts):\d+/);
    }
    const badFirm = await history('bad%20firm');
    expect(badFirm.status).toBe(400);
  });

  it('reads its own writes with ?minPosition=', async () => {
    await activeFirm(api, 'initech', 2);
    await registerUser(api, 'initech', 'ann');
    const enrolled = await enrollTotp(api, 'initech', 'ann', clock.now());
    const answer = await history('initech', `?minPosition=${enrolled.position}`);
    expect(answer.status).toBe(200);
    expect(answer.body).toMatchObject({ licenseCount: 2, seatsInUse: 1 });
    const last = answer.body.points[answer.body.points.length - 1];
    expect(last).toMatchObject({ seatsInUse: 1, licenseCount: 2, usagePercent: 50 });
    expect(BigInt(last.position)).toBeLessThanOrEqual(BigInt(enrolled.position));
  });

  it('downsamples more than 1,000 changes, never hiding an instant at 80 %', async () => {
    // Four users hold a seat; then 1,500 license changes a minute apart,
    // seeded straight into the subscription stream as the slice writes them,
    // cycling over 6, 7 and 8 licenses (66, 57, 50 %), but for once 5
    // licenses (80 %), changed back within the same millisecond. (License
    // changes, not seat events: the seat keeper would free seats without a
    // factor, racing the reads below.)
    await activeFirm(api, 'bulk', 10);
    for (const userId of ['ann', 'bob', 'cy', 'dee']) {
      await registerUser(api, 'bulk', userId);
      await enrollTotp(api, 'bulk', userId, clock.now());
    }
    const start = clock.now().getTime();
    const events: NewEvent[] = [];
    let at = start;
    let previous = 10;
    const change = (licenseCount: number, step = 60_000) => {
      at += step;
      const e = newEvent('bulk', 'LicenseCountChanged', {
        licenseCount,
        previousLicenseCount: previous,
        seatsInUse: 4,
        forced: false,
        changedAt: iso(at),
      });
      previous = licenseCount;
      events.push({ ...e, metadata: { ...e.metadata, occurredAt: iso(at) } });
    };
    const cycle = [6, 7, 8, 7];
    for (let i = 0; events.length < 1500; i++) {
      change(cycle[i % cycle.length]);
      if (i === 700) {
        change(5, 0);
        change(6, 0);
      }
    }
    const store = service.app.get<EventStore>(EVENT_STORE);
    let position = 0n;
    for (let i = 0; i < events.length; i += 500) {
      const appended = await store.appendToStream(
        streams.subscription('bulk'),
        events.slice(i, i + 500),
        'any',
      );
      position = appended.position;
    }
    clock.advance(at - start + hour);

    const answer = await history('bulk', `?minPosition=${position}`);
    expect(answer.status).toBe(200);
    const points = answer.body.points as Array<{ position: string; usagePercent: number }>;
    expect(points.length).toBeLessThanOrEqual(1000);
    expect(points.length).toBeGreaterThan(900);
    expect(Math.max(...points.map((p) => p.usagePercent))).toBe(80);
    const positions = points.map((p) => BigInt(p.position));
    expect(positions.every((p, i) => i === 0 || positions[i - 1] < p)).toBe(true);
    expect(points[points.length - 1].position).toBe(String(position));
    const usage = await api.get(`/v1/firms/bulk/mfa/usage?minPosition=${position}`, operator);
    expect(points[points.length - 1]).toMatchObject({
      usagePercent: usage.body.usagePercent,
      seatsInUse: usage.body.seatsInUse,
    });

    // A window inside the changes starts at the height it stood at, and is downsampled too.
    const from = iso(start + 3 * 60_000 + 30_000);
    const windowed = await history('bulk', `?from=${from}&to=${iso(at)}`);
    expect(windowed.body.points.length).toBeLessThanOrEqual(1000);
    expect(windowed.body.points[0].at).toBe(from);
    expect(windowed.body.points[0]).toMatchObject({ seatsInUse: 4, licenseCount: 8 });
    expect(
      Math.max(...windowed.body.points.map((p: { usagePercent: number }) => p.usagePercent)),
    ).toBe(80);
  });
});
