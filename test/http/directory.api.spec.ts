import { RunningService, startService, token } from '../support/harness';
import { mailSettled } from '../support/notifications';

/** DESIGN §2.3: the host syncs its directory of users and corporations. */
describe('Directory over HTTP', () => {
  let service: RunningService;
  const host = token('host', { sub: 'host-app' });
  const users = '/v1/firms/acme/users';

  beforeAll(async () => (service = await startService()));
  afterAll(() => service.stop());

  const caseManager = {
    role: 'case-manager',
    name: 'Ada Lovelace',
    email: 'ada@lawfirm.example',
    organization: 'Acme Immigration',
    billingContact: true,
    firmAdmin: false,
  };

  it('registers a user with its whole profile', async () => {
    const res = await service.api.put(`${users}/cm-1`, host, caseManager);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      userId: 'cm-1',
      status: 'active',
      ...caseManager,
      corporationId: null,
    });
    const [registered] = await service.events();
    expect(registered).toMatchObject({
      type: 'UserRegistered',
      streamId: 'user-acme/cm-1',
      data: { userId: 'cm-1', ...caseManager, corporationId: null },
      metadata: { firmId: 'acme', actor: { id: 'host-app', role: 'host' } },
    });
  });

  it('the same profile again changes nothing; a changed one is an update', async () => {
    const same = await service.api.put(`${users}/cm-1`, host, caseManager);
    expect(same.status).toBe(200);
    expect(await service.events()).toHaveLength(1);
    const renamed = await service.api.put(`${users}/cm-1`, host, {
      ...caseManager,
      name: 'Ada King',
    });
    expect(renamed.body.name).toBe('Ada King');
    expect((await service.events()).map((e) => e.type)).toEqual([
      'UserRegistered',
      'UserProfileUpdated',
    ]);
  });

  it('corporationId is required exactly for corp users and foreign nationals', async () => {
    const missing = await service.api.put(`${users}/fn-1`, host, {
      role: 'foreign-national',
      name: 'Jun Ito',
      email: 'jun@corp.example',
    });
    expect(missing.status).toBe(400);
    expect(missing.body).toMatchObject({
      type: '/problems/corporation-required',
      errors: [{ field: 'corporationId' }],
    });
    const refused = await service.api.put(`${users}/cm-2`, host, {
      ...caseManager,
      corporationId: 'corp-1',
    });
    expect(refused.status).toBe(400);
    expect(refused.body.type).toBe('/problems/corporation-not-allowed');

    const ok = await service.api.put(`${users}/fn-1`, host, {
      role: 'foreign-national',
      corporationId: 'corp-never-registered',
      name: 'Jun Ito',
      email: 'jun@corp.example',
    });
    expect(ok.status).toBe(200);
    expect(ok.body).toMatchObject({
      corporationId: 'corp-never-registered',
      organization: null,
      billingContact: false,
      firmAdmin: false,
    });
  });

  it('deactivates with a reason and reactivates', async () => {
    const off = await service.api.post(`${users}/fn-1/deactivate`, host, {
      reason: 'portal-access-disabled',
    });
    expect(off.status).toBe(200);
    expect(off.body.status).toBe('inactive');
    const on = await service.api.post(`${users}/fn-1/reactivate`, host, {});
    expect(on.body.status).toBe('active');
    const tail = (await service.events()).slice(-2);
    expect(tail.map((e) => [e.type, e.data.reason])).toEqual([
      ['UserDeactivated', 'portal-access-disabled'],
      ['UserReactivated', undefined],
    ]);
  });

  it('deactivating or reactivating an unknown user is 404', async () => {
    // The emails of the set-up go out first: they are not this request's doing.
    await mailSettled(service);
    const before = (await service.events()).length;
    for (const res of [
      await service.api.post(`${users}/ghost/deactivate`, host, { reason: 'deleted' }),
      await service.api.post(`${users}/ghost/reactivate`, host, {}),
    ]) {
      expect(res.status).toBe(404);
      expect(res.body.type).toBe('/problems/user-not-found');
    }
    expect(await service.events()).toHaveLength(before);
  });

  it('registers and renames a corporation', async () => {
    const first = await service.api.put('/v1/firms/acme/corporations/corp-1', host, {
      name: 'Globex',
    });
    expect(first.body).toMatchObject({ corporationId: 'corp-1', name: 'Globex' });
    await service.api.put('/v1/firms/acme/corporations/corp-1', host, {
      name: 'Globex Corporation',
    });
    const events = (await service.events()).filter((e) => e.streamId === 'corporation-acme/corp-1');
    expect(events.map((e) => [e.type, e.data.name])).toEqual([
      ['CorporationRegistered', 'Globex'],
      ['CorporationRenamed', 'Globex Corporation'],
    ]);
  });

  it('firms never share data: the same user id in another firm is another user', async () => {
    const res = await service.api.post('/v1/firms/other/users/cm-1/deactivate', host, {
      reason: 'deleted',
    });
    expect(res.status).toBe(404);
  });
});
