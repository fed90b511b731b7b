import { RunningService, startService, token } from '../support/harness';
import { mailSettled } from '../support/notifications';

/** DESIGN §2.1 and §3 through the HTTP contract: the answer, and what reached the log. */
describe('Subscription and licenses over HTTP', () => {
  let service: RunningService;
  const superuser = token('superuser', { firm: 'acme', sub: 'admin-1' });
  const operator = token('operator', { sub: 'ops-1' });
  const base = '/v1/firms/acme/mfa';

  beforeAll(async () => (service = await startService()));
  afterAll(() => service.stop());

  it('a firm never seen has status none', async () => {
    const res = await service.api.get('/v1/firms/never-seen/mfa/subscription', superuser);
    // superuser of acme cannot read another firm; the operator can.
    expect(res.status).toBe(403);
    const asOperator = await service.api.get('/v1/firms/never-seen/mfa/subscription', operator);
    expect(asOperator.status).toBe(200);
    expect(asOperator.body).toEqual({ status: 'none', plan: null, licenseCount: 0 });
  });

  it('an operator cannot activate a subscription nobody requested', async () => {
    const res = await service.api.post(`${base}/subscription/activate`, operator, {
      licenseCount: 10,
      plan: 'standard',
    });
    expect(res.status).toBe(409);
    expect(res.body.type).toBe('/problems/subscription-not-requested');
    expect(await service.events()).toHaveLength(0);
  });

  it('request, then activate: the subscription is active with its seats', async () => {
    const requested = await service.api.post(`${base}/subscription/request`, superuser, {
      plan: 'standard',
    });
    expect(requested.status).toBe(200);
    expect(requested.body).toMatchObject({ status: 'requested', plan: 'standard' });
    expect(requested.body.position).toMatch(/^\d+$/);

    const activated = await service.api.post(`${base}/subscription/activate`, operator, {
      licenseCount: 10,
      plan: 'standard',
    });
    expect(activated.status).toBe(200);
    expect(activated.body).toMatchObject({ status: 'active', plan: 'standard', licenseCount: 10 });
    expect(BigInt(activated.body.position)).toBeGreaterThan(BigInt(requested.body.position));

    const read = await service.api.get(`${base}/subscription`, superuser);
    expect(read.body).toEqual({ status: 'active', plan: 'standard', licenseCount: 10 });

    const events = await service.events();
    expect(events.map((e) => e.type)).toEqual(['SubscriptionRequested', 'SubscriptionActivated']);
    expect(events[1]).toMatchObject({
      streamId: 'subscription-acme',
      data: { plan: 'standard', licenseCount: 10 },
      metadata: { firmId: 'acme', actor: { id: 'ops-1', role: 'operator' }, schemaVersion: 1 },
    });
    expect(events[0].metadata.actor).toEqual({ id: 'admin-1', role: 'superuser' });
  });

  it('requesting while active is refused', async () => {
    const res = await service.api.post(`${base}/subscription/request`, superuser, {});
    expect(res.status).toBe(409);
    expect(res.body.type).toBe('/problems/subscription-already-active');
  });

  it('the operator changes the license count; the same count changes nothing', async () => {
    // The emails of the set-up go out first: they are not this request's doing.
    await mailSettled(service);
    const before = (await service.events()).length;
    const raised = await service.api.put(`${base}/licenses`, operator, { licenseCount: 25 });
    expect(raised.status).toBe(200);
    expect(raised.body.licenseCount).toBe(25);
    const same = await service.api.put(`${base}/licenses`, operator, { licenseCount: 25 });
    expect(same.status).toBe(200);
    expect(same.body.position).toBe(raised.body.position);
    const events = await service.events();
    expect(
      events.slice(before).map((e) => [e.type, e.data.licenseCount, e.data.previousLicenseCount]),
    ).toEqual([['LicenseCountChanged', 25, 10]]);
  });

  it('cancel turns the subscription off; a re-activation restores it', async () => {
    const cancelled = await service.api.post(`${base}/subscription/cancel`, operator, {});
    expect(cancelled.body.status).toBe('cancelled');
    const licenses = await service.api.put(`${base}/licenses`, operator, { licenseCount: 30 });
    expect(licenses.status).toBe(409);
    expect(licenses.body.type).toBe('/problems/subscription-not-active');
    const again = await service.api.post(`${base}/subscription/cancel`, operator, {});
    expect(again.status).toBe(200);
    const reactivated = await service.api.post(`${base}/subscription/activate`, operator, {
      licenseCount: 30,
      plan: 'premium',
    });
    expect(reactivated.body).toMatchObject({ status: 'active', plan: 'premium', licenseCount: 30 });
  });

  it('cancelling a subscription that never existed is refused', async () => {
    const res = await service.api.post('/v1/firms/nobody/mfa/subscription/cancel', operator, {});
    expect(res.status).toBe(409);
    expect(res.body.type).toBe('/problems/subscription-not-active');
  });

  it('a refused command appends nothing', async () => {
    const before = await service.events();
    await service.api.post(`${base}/subscription/request`, superuser, { plan: 'x' });
    await service.api.post('/v1/firms/nobody/mfa/subscription/cancel', operator, {});
    expect(await service.events()).toEqual(before);
  });
});
