import { RunningService, startService, token } from '../support/harness';

/** DESIGN §2.2: enablement switches, only while the subscription is active. */
describe('Enablement over HTTP', () => {
  let service: RunningService;
  const superuser = token('superuser', { firm: 'acme' });
  const operator = token('operator');
  const base = '/v1/firms/acme/mfa/enablement';

  beforeAll(async () => (service = await startService()));
  afterAll(() => service.stop());

  it('every enablement command is refused while the subscription is not active', async () => {
    const attempts = [
      service.api.put(`${base}/case-managers`, superuser, { enabled: true }),
      service.api.put(`${base}/vendor-case-managers`, superuser, { enabled: true }),
      service.api.put(`${base}/corporations`, superuser, { mode: 'specific' }),
      service.api.put(`${base}/corporations/corp-1`, superuser, {
        corpUsers: true,
        foreignNationals: false,
      }),
      service.api.delete(`${base}/corporations/corp-1`, superuser),
    ];
    for (const res of await Promise.all(attempts)) {
      expect(res.status).toBe(409);
      expect(res.body.type).toBe('/problems/subscription-not-active');
    }
    expect(await service.events()).toHaveLength(0);
  });

  it('starts with everything off', async () => {
    const res = await service.api.get(base, superuser);
    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      caseManagers: false,
      vendorCaseManagers: false,
      corporations: { mode: 'all', corpUsers: false, foreignNationals: false, specific: [] },
    });
  });

  describe('with an active subscription', () => {
    beforeAll(async () => {
      await service.api.post('/v1/firms/acme/mfa/subscription/request', superuser, {});
      const res = await service.api.post('/v1/firms/acme/mfa/subscription/activate', operator, {
        licenseCount: 5,
        plan: 'standard',
      });
      expect(res.status).toBe(200);
    });

    it('switches case managers and vendor case managers independently', async () => {
      expect(
        (await service.api.put(`${base}/case-managers`, superuser, { enabled: true })).body,
      ).toMatchObject({
        caseManagers: true,
        vendorCaseManagers: false,
      });
      expect(
        (await service.api.put(`${base}/vendor-case-managers`, superuser, { enabled: true })).body,
      ).toMatchObject({ caseManagers: true, vendorCaseManagers: true });
      expect(
        (await service.api.put(`${base}/case-managers`, superuser, { enabled: false })).body,
      ).toMatchObject({
        caseManagers: false,
        vendorCaseManagers: true,
      });
    });

    it('all corporations: the two switches; omitted switches keep their value', async () => {
      const on = await service.api.put(`${base}/corporations`, superuser, {
        mode: 'all',
        corpUsers: true,
        foreignNationals: false,
      });
      expect(on.body.corporations).toEqual({
        mode: 'all',
        corpUsers: true,
        foreignNationals: false,
        specific: [],
      });
      const partial = await service.api.put(`${base}/corporations`, superuser, {
        mode: 'all',
        foreignNationals: true,
      });
      expect(partial.body.corporations).toMatchObject({ corpUsers: true, foreignNationals: true });
    });

    it('specific corporations: listed one by one, refused in mode all, removed', async () => {
      const refused = await service.api.put(`${base}/corporations/corp-1`, superuser, {
        corpUsers: true,
        foreignNationals: false,
      });
      expect(refused.status).toBe(409);
      expect(refused.body.type).toBe('/problems/corporation-mode-not-specific');

      await service.api.put(`${base}/corporations`, superuser, { mode: 'specific' });
      await service.api.put(`${base}/corporations/corp-2`, superuser, {
        corpUsers: false,
        foreignNationals: true,
      });
      const listed = await service.api.put(`${base}/corporations/corp-1`, superuser, {
        corpUsers: true,
        foreignNationals: false,
      });
      expect(listed.status).toBe(200);
      expect(listed.body.corporations).toEqual({
        mode: 'specific',
        corpUsers: true,
        foreignNationals: true,
        specific: [
          { corporationId: 'corp-1', corpUsers: true, foreignNationals: false },
          { corporationId: 'corp-2', corpUsers: false, foreignNationals: true },
        ],
      });

      const removed = await service.api.delete(`${base}/corporations/corp-2`, superuser);
      expect(removed.status).toBe(200);
      expect(removed.body.corporations.specific).toEqual([
        { corporationId: 'corp-1', corpUsers: true, foreignNationals: false },
      ]);
      const missing = await service.api.delete(`${base}/corporations/corp-2`, superuser);
      expect(missing.status).toBe(404);
      expect(missing.body.type).toBe('/problems/corporation-not-listed');
    });

    it('the whole configuration reads back as the last answer said', async () => {
      const res = await service.api.get(base, superuser);
      expect(res.body).toEqual({
        caseManagers: false,
        vendorCaseManagers: true,
        corporations: {
          mode: 'specific',
          corpUsers: true,
          foreignNationals: true,
          specific: [{ corporationId: 'corp-1', corpUsers: true, foreignNationals: false }],
        },
      });
      const types = (await service.events())
        .filter((e) => e.streamId === 'enablement-acme')
        .map((e) => e.type);
      expect(types).toEqual([
        'CaseManagersEnablementChanged',
        'VendorCaseManagersEnablementChanged',
        'CaseManagersEnablementChanged',
        'CorporationModeChanged',
        'CorporationModeChanged',
        'CorporationModeChanged',
        'SpecificCorporationSet',
        'SpecificCorporationSet',
        'SpecificCorporationRemoved',
      ]);
    });

    it('enablement stays configured but is refused once the subscription is cancelled', async () => {
      await service.api.post('/v1/firms/acme/mfa/subscription/cancel', operator, {});
      const res = await service.api.put(`${base}/case-managers`, superuser, { enabled: true });
      expect(res.status).toBe(409);
      expect(res.body.type).toBe('/problems/subscription-not-active');
      expect((await service.api.get(base, superuser)).body.vendorCaseManagers).toBe(true);
    });
  });
});
