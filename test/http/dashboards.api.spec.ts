import { EVENT_STORE, EventStore } from '../../src/event-store/event-store.port';
import { Api, RunningService, startService, token } from '../support/harness';
import { LogWriter } from '../support/log-events';

/*
 * The dashboards over HTTP, on the real SQLite stores. Factor events are
 * appended straight to the log, as the enrollment slice writes them; every
 * read passes the position it needs (read-your-writes), nothing sleeps.
 */
describe('Dashboards', () => {
  let service: RunningService;
  let api: Api;
  let log: LogWriter;
  const superuser = token('superuser', { firm: 'acme' });
  const operator = token('operator');
  const host = token('host');

  beforeEach(async () => {
    service = await startService();
    api = service.api;
    log = new LogWriter(service.app.get<EventStore>(EVENT_STORE));
  });
  afterEach(() => service.stop());

  async function register(userId: string, body: Record<string, unknown>) {
    const response = await api.put(`/v1/firms/acme/users/${userId}`, host, {
      email: `${userId}@example.com`,
      ...body,
    });
    expect(response.status).toBe(200);
    return response.body.position as string;
  }

  async function activate(licenseCount: number) {
    expect((await api.post('/v1/firms/acme/mfa/subscription/request', superuser)).status).toBe(200);
    const activated = await api.post('/v1/firms/acme/mfa/subscription/activate', operator, {
      licenseCount,
      plan: 'standard',
    });
    expect(activated.status).toBe(200);
    return activated.body.position as string;
  }

  it('answers a firm never seen with status none and empty read models, not 404', async () => {
    const usage = await api.get('/v1/firms/nobody/mfa/usage', operator);
    expect(usage.status).toBe(200);
    expect(usage.body).toEqual({
      status: 'none',
      licenseCount: 0,
      seatsInUse: 0,
      unutilized: 0,
      usagePercent: 0,
    });
    const counters = await api.get('/v1/firms/nobody/mfa/counters', operator);
    const zero = { caseManagers: 0, vendorCaseManagers: 0, corpUsers: 0, foreignNationals: 0 };
    expect(counters.body).toEqual({ enabled: zero, enrolled: zero });
    const list = await api.get('/v1/firms/nobody/mfa/enrolled-users', operator);
    expect(list.body).toEqual({ items: [], nextCursor: null });
  });

  it('shows usage, counters and the enrolled list after commands and enrollments', async () => {
    await activate(4);
    await register('u-ann', { role: 'case-manager', name: 'Ann Lee', organization: 'Acme Law' });
    await register('u-bob', {
      role: 'corp-user',
      corporationId: 'corp-1',
      name: 'bob Stone',
      organization: 'Globex',
    });
    await register('u-cy', { role: 'case-manager', name: 'Cy Ng' });
    const enabled = await api.put('/v1/firms/acme/mfa/enablement/case-managers', superuser, {
      enabled: true,
    });
    expect(enabled.status).toBe(200);
    await log.confirmFactor('acme', 'u-ann', 'f-1', 'totp', '2026-01-15T10:00:00.000Z');
    await log.confirmFactor('acme', 'u-ann', 'f-2', 'webauthn', '2026-01-15T10:05:00.000Z');
    await log.assignSeat('acme', 'u-ann');
    await log.confirmFactor('acme', 'u-bob', 'f-3', 'totp', '2026-01-15T10:10:00.000Z');
    const position = await log.assignSeat('acme', 'u-bob');

    const usage = await api.get(`/v1/firms/acme/mfa/usage?minPosition=${position}`, superuser);
    expect(usage.body).toEqual({
      status: 'active',
      licenseCount: 4,
      seatsInUse: 2,
      unutilized: 2,
      usagePercent: 50,
    });
    const counters = await api.get(`/v1/firms/acme/mfa/counters?minPosition=${position}`, operator);
    expect(counters.body).toEqual({
      enabled: { caseManagers: 2, vendorCaseManagers: 0, corpUsers: 0, foreignNationals: 0 },
      enrolled: { caseManagers: 1, vendorCaseManagers: 0, corpUsers: 1, foreignNationals: 0 },
    });
    const list = await api.get(
      `/v1/firms/acme/mfa/enrolled-users?minPosition=${position}`,
      superuser,
    );
    expect(list.status).toBe(200);
    expect(list.body).toEqual({
      items: [
        {
          userId: 'u-ann',
          name: 'Ann Lee',
          email: 'u-ann@example.com',
          organization: 'Acme Law',
          role: 'case-manager',
          corporationId: null,
          factors: ['totp', 'webauthn'],
          enrolledAt: '2026-01-15T10:00:00.000Z',
          enforced: true,
        },
        {
          userId: 'u-bob',
          name: 'bob Stone',
          email: 'u-bob@example.com',
          organization: 'Globex',
          role: 'corp-user',
          corporationId: 'corp-1',
          factors: ['totp'],
          enrolledAt: '2026-01-15T10:10:00.000Z',
          // Corp users are not enabled: enrolled, listed, but not enforced.
          enforced: false,
        },
      ],
      nextCursor: null,
    });

    const search = await api.get(
      `/v1/firms/acme/mfa/enrolled-users?search=GLOB&minPosition=${position}`,
      superuser,
    );
    expect(search.body.items.map((u: any) => u.userId)).toEqual(['u-bob']);
    const byRole = await api.get('/v1/firms/acme/mfa/enrolled-users?role=case-manager', operator);
    expect(byRole.body.items.map((u: any) => u.userId)).toEqual(['u-ann']);

    // A reset removes the user from the list at once, and frees the seat.
    await log.resetEnrollment('acme', 'u-ann', ['f-1', 'f-2']);
    const released = await log.releaseSeat('acme', 'u-ann');
    const after = await api.get(
      `/v1/firms/acme/mfa/enrolled-users?minPosition=${released}`,
      superuser,
    );
    expect(after.body.items.map((u: any) => u.userId)).toEqual(['u-bob']);
    const usageAfter = await api.get(`/v1/firms/acme/mfa/usage?minPosition=${released}`, superuser);
    expect(usageAfter.body).toMatchObject({ seatsInUse: 1, unutilized: 3, usagePercent: 25 });
  });

  it('pages the enrolled list with a cursor in name order, then user id', async () => {
    let position = '0';
    const names = ['delta', 'Alpha', 'charlie', 'Bravo', 'alpha', 'echo', 'Charlie'];
    for (const [index, name] of names.entries()) {
      const userId = `u-${index}`;
      await register(userId, { role: 'case-manager', name });
      position = await log.confirmFactor('acme', userId, `f-${index}`, 'totp');
    }
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const query: string = `limit=3&minPosition=${position}${cursor ? `&cursor=${cursor}` : ''}`;
      const page = await api.get(`/v1/firms/acme/mfa/enrolled-users?${query}`, superuser);
      expect(page.status).toBe(200);
      expect(page.body.items.length).toBeLessThanOrEqual(3);
      seen.push(...page.body.items.map((u: any) => `${u.name}/${u.userId}`));
      cursor = page.body.nextCursor;
    } while (cursor);
    expect(seen).toEqual([
      'Alpha/u-1',
      'alpha/u-4',
      'Bravo/u-3',
      'charlie/u-2',
      'Charlie/u-6',
      'delta/u-0',
      'echo/u-5',
    ]);
  });

  it('lists corporations for the picker with their active users, searchable', async () => {
    await register('u-1', { role: 'corp-user', corporationId: 'globex', name: 'A' });
    await register('u-2', { role: 'foreign-national', corporationId: 'globex', name: 'B' });
    await register('u-3', { role: 'corp-user', corporationId: 'initech', name: 'C' });
    await api.post('/v1/firms/acme/users/u-3/deactivate', host, { reason: 'deleted' });
    const named = await api.put('/v1/firms/acme/corporations/globex', host, {
      name: 'Globex Corporation',
    });
    const position = named.body.position as string;
    const all = await api.get(`/v1/firms/acme/corporations?minPosition=${position}`, superuser);
    expect(all.status).toBe(200);
    expect(all.body.items).toEqual([
      { corporationId: 'globex', name: 'Globex Corporation', corpUsers: 1, foreignNationals: 1 },
      { corporationId: 'initech', name: 'initech', corpUsers: 0, foreignNationals: 0 },
    ]);
    const search = await api.get('/v1/firms/acme/corporations?search=CORP', superuser);
    expect(search.body.items.map((c: any) => c.corporationId)).toEqual(['globex']);
    expect((await api.get('/v1/firms/acme/corporations', operator)).status).toBe(403);
  });

  it('refuses bad query parameters with problem+json', async () => {
    for (const query of [
      'limit=0',
      'limit=201',
      'limit=abc',
      'cursor=not-a-cursor',
      'role=admin',
      'corporationId=a%20b',
      'minPosition=-1',
      'unknown=1',
    ]) {
      const response = await api.get(`/v1/firms/acme/mfa/enrolled-users?${query}`, superuser);
      expect({ query, status: response.status }).toEqual({ query, status: 400 });
      expect(response.headers.get('content-type')).toMatch(/application\/problem\+json/);
    }
  });

  it('allows superuser and operator on dashboards, nobody else', async () => {
    for (const path of ['usage', 'counters', 'enrolled-users']) {
      expect((await api.get(`/v1/firms/acme/mfa/${path}`, superuser)).status).toBe(200);
      expect((await api.get(`/v1/firms/acme/mfa/${path}`, operator)).status).toBe(200);
      expect((await api.get(`/v1/firms/acme/mfa/${path}`, host)).status).toBe(403);
      expect((await api.get(`/v1/firms/other/mfa/${path}`, superuser)).status).toBe(403);
      expect((await api.get(`/v1/firms/acme/mfa/${path}`)).status).toBe(401);
    }
  });

  it('answers 503 with Retry-After when a position is not reached within 5 s', async () => {
    const response = await api.get('/v1/firms/acme/mfa/usage?minPosition=999999', operator);
    expect(response.status).toBe(503);
    expect(response.headers.get('retry-after')).toBe('1');
    expect(response.body.type).toBe('/problems/read-model-behind');
  });

  it('lists every projection in /health with its position and lag', async () => {
    const position = await register('u-1', { role: 'case-manager', name: 'A' });
    await api.get(`/v1/firms/acme/mfa/usage?minPosition=${position}`, operator);
    await api.get(`/v1/firms/acme/mfa/counters?minPosition=${position}`, operator);
    await api.get(`/v1/firms/acme/mfa/enrolled-users?minPosition=${position}`, operator);
    await api.get(`/v1/firms/acme/corporations?minPosition=${position}`, superuser);
    await api.get(`/v1/firms/acme/mfa/usage/history?minPosition=${position}`, operator);
    const health = await api.get('/health');
    expect(health.body.status).toBe('ok');
    expect(health.body.projections.map((p: any) => p.name).sort()).toEqual([
      'corporations',
      'enrolled-users',
      'failed-emails',
      'license-usage',
      'mail-directory',
      'role-counters',
      'seat-repairs',
      'usage-history',
    ]);
    for (const projection of health.body.projections) {
      expect(projection).toMatchObject({ position, lag: '0', status: 'live' });
    }
  });
});
