import { EVENT_STORE, EventStore, RecordedEvent } from '../../src/event-store/event-store.port';
import { upcasters } from '../../src/event-store/upcasting';
import { ALL_PROJECTIONS } from '../../projections';
import { streams } from '../../src/shared/ids';
import { RunningService, startService, TestClock, token } from '../support/harness';
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
import { settled } from './audit-fixtures';

/*
 * API.md "Audit": GET /v1/audit/firms/{firmId}/state?asOf= answers the
 * dashboards as they stood at that moment. A scripted history is driven over
 * HTTP with a test clock; the dashboards are captured at several moments;
 * the state as of each moment must equal what was captured, and the state as
 * of now the live dashboards.
 */

const auditor = token('auditor', { firm: 'acme', sub: 'auditor-1' });
const admin = superuserOf('acme');

interface Dashboards {
  usage: unknown;
  counters: unknown;
  enrolledUsers: unknown[];
}

describe('the state as of a moment', () => {
  const clock = new TestClock(new Date('2026-01-15T09:00:00.000Z'));
  let service: RunningService;
  const captured: Array<{ at: string; dashboards: Dashboards; head: bigint }> = [];

  /** The dashboards as a superuser sees them once every consumer has caught up. */
  async function dashboards(): Promise<Dashboards> {
    const head = await settled(service);
    const read = async (path: string) => {
      const response = await service.api.get(
        `/v1/firms/acme/mfa/${path}${path.includes('?') ? '&' : '?'}minPosition=${head}`,
        admin,
      );
      expectOk(response);
      return response.body;
    };
    const enrolledUsers: unknown[] = [];
    for (let cursor: string | null = ''; cursor !== null;) {
      const page = await read(`enrolled-users?limit=2${cursor ? `&cursor=${cursor}` : ''}`);
      enrolledUsers.push(...page.items);
      cursor = page.nextCursor;
    }
    return { usage: await read('usage'), counters: await read('counters'), enrolledUsers };
  }

  async function capture(): Promise<void> {
    const dashboardsNow = await dashboards();
    captured.push({
      at: clock.now().toISOString(),
      dashboards: dashboardsNow,
      head: await service.app.get<EventStore>(EVENT_STORE).headPosition(),
    });
    clock.advance(3_600_000);
  }

  const stateAsOf = (asOf: string) =>
    service.api.get(`/v1/audit/firms/acme/state?asOf=${encodeURIComponent(asOf)}`, auditor);

  beforeAll(async () => {
    service = await startService({ clock, env: { RATE_LIMIT_PER_USER: 'off' } });
    const api = service.api;
    await activeFirm(api, 'acme', 2, { caseManagers: true });
    // A firm whose id only looks alike, busy at the same moments.
    await activeFirm(api, 'acme-2', 5, { caseManagers: true, vendorCaseManagers: true });
    await registerUser(api, 'acme', 'ann', { name: 'Ann Lee', organization: 'Lee & Co' });
    await registerUser(api, 'acme', 'bob', { name: 'bob Stone' });
    await registerUser(api, 'acme', 'vic', { name: 'Vic Vendor', role: 'vendor-case-manager' });
    await registerUser(api, 'acme-2', 'ann');
    await capture(); // registered, nobody enrolled

    await enrollTotp(api, 'acme', 'ann', clock.now());
    await enrollTotp(api, 'acme', 'bob', clock.now());
    await enrollTotp(api, 'acme-2', 'ann', clock.now());
    await capture(); // two enrolled, every seat taken

    expectOk(await api.put('/v1/firms/acme/mfa/licenses', operator, { licenseCount: 4 }));
    expectOk(
      await api.put('/v1/firms/acme/mfa/enablement/vendor-case-managers', admin, { enabled: true }),
    );
    await enrollTotp(api, 'acme', 'vic', clock.now());
    await capture(); // a license change, vendors switched on, a third enrolled

    expectOk(await api.post(`${mfaPath('acme', 'ann')}/reset`, admin, { reason: 'lost phone' }));
    await capture(); // a reset

    expectOk(
      await api.post('/v1/firms/acme/users/bob/deactivate', host, { reason: 'account-disabled' }),
    );
    // An event the projections cannot apply: the live engine quarantines it, and so must the state.
    const unusable = newEvent('acme', 'FactorConfirmed', { factorType: 'totp' });
    unusable.metadata.occurredAt = clock.now().toISOString();
    await service.app
      .get<EventStore>(EVENT_STORE)
      .appendToStream(streams.user('acme', 'zed'), [unusable], 'no_stream');
    await enrollTotp(api, 'acme', 'ann', clock.now());
    await capture(); // a deactivation, a bad event, ann enrolled again
  });
  afterAll(() => service?.stop());

  it('as of each captured moment, equals the dashboards captured then', async () => {
    expect(captured).toHaveLength(5);
    for (const { at, dashboards: then } of captured) {
      const state = await stateAsOf(at);
      expectOk(state);
      expect({ at, state: { ...state.body, asOf: undefined, position: undefined } }).toEqual({
        at,
        state: { ...then, asOf: undefined, position: undefined },
      });
      expect(state.body.asOf).toBe(at);
    }
    // The history moved every dashboard between the moments.
    const distinct = new Set(captured.map(({ dashboards: d }) => JSON.stringify(d)));
    expect(distinct.size).toBe(captured.length);
  });

  it("names the last event folded: the firm's last event of those read models at or before the moment", async () => {
    const types = new Set(
      upcasters.storedTypes(
        ALL_PROJECTIONS.filter((p) =>
          ['license-usage', 'role-counters', 'enrolled-users'].includes(p.name),
        ).flatMap((p) => p.handles),
      ),
    );
    const log = await service.events();
    for (const { at } of captured) {
      const folded = log.filter(
        (event: RecordedEvent) =>
          event.metadata.firmId === 'acme' &&
          types.has(event.type) &&
          event.metadata.occurredAt <= at,
      );
      const state = await stateAsOf(at);
      expect(state.body.position).toBe(folded[folded.length - 1].position.toString());
    }
  });

  it('between two moments, equals the earlier one; before the first event, is empty', async () => {
    const halfPast = new Date(Date.parse(captured[1].at) + 1_800_000).toISOString();
    const state = await stateAsOf(halfPast);
    expect({ ...state.body, asOf: undefined, position: undefined }).toEqual({
      ...captured[1].dashboards,
      asOf: undefined,
      position: undefined,
    });
    const before = await stateAsOf('2026-01-15T08:59:59.999Z');
    expect(before.body).toEqual({
      asOf: '2026-01-15T08:59:59.999Z',
      position: '0',
      usage: { status: 'none', licenseCount: 0, seatsInUse: 0, unutilized: 0, usagePercent: 0 },
      counters: {
        enabled: { caseManagers: 0, vendorCaseManagers: 0, corpUsers: 0, foreignNationals: 0 },
        enrolled: { caseManagers: 0, vendorCaseManagers: 0, corpUsers: 0, foreignNationals: 0 },
      },
      enrolledUsers: [],
    });
  });

  it('as of now, equals the live dashboards', async () => {
    const live = await dashboards();
    const state = await stateAsOf(clock.now().toISOString());
    expectOk(state);
    expect({ ...state.body, asOf: undefined, position: undefined }).toEqual({
      ...live,
      asOf: undefined,
      position: undefined,
    });
    // An offset and a date name moments too.
    const date = await stateAsOf('2026-01-15');
    expectOk(date);
    expect(date.body).toMatchObject({ asOf: '2026-01-15T00:00:00.000Z', position: '0' });
    const offset = await stateAsOf('2026-01-15T11:00:00+01:00');
    expect({ ...offset.body, asOf: undefined, position: undefined }).toEqual({
      ...captured[1].dashboards,
      asOf: undefined,
      position: undefined,
    });
  });

  it.each([
    ['', 'asOf'],
    ['?asOf=', 'asOf'],
    ['?asOf=yesterday', 'asOf'],
    ['?asOf=2026-01-15T12:00:00', 'asOf'],
    ['?asOf=2026-13-01T00:00:00Z', 'asOf'],
    ['?asOf=2099-01-01T00:00:00Z', 'asOf'],
    ['?asOf=2026-01-15T12:00:00Z&minPosition=1', 'minPosition'],
  ])('refuses %s with a 400 naming %s', async (query, field) => {
    const refused = await service.api.get(`/v1/audit/firms/acme/state${query}`, auditor);
    expect(refused.status).toBe(400);
    expect(refused.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(refused.body.errors.map((error: { field: string }) => error.field)).toContain(field);
  });
});
