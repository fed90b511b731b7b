import { RunningService, startService, token } from '../support/harness';

/** DESIGN §6 at the HTTP edge: idempotent commands, event metadata, health and docs. */
describe('Commands over HTTP', () => {
  let service: RunningService;
  const superuser = token('superuser', { firm: 'acme', sub: 'admin-1' });
  const operator = token('operator');
  const host = token('host');

  beforeAll(async () => (service = await startService()));
  afterAll(() => service.stop());

  describe('Idempotency-Key', () => {
    it('a retried command is a no-op that answers the first answer', async () => {
      const key = { 'idempotency-key': 'req-123' };
      const first = await service.api.put('/v1/firms/acme/users/u1', host, user('First'), key);
      // Between the two tries the user changed: a re-run would answer differently.
      await service.api.put('/v1/firms/acme/users/u1', host, user('Changed'));
      const retry = await service.api.put('/v1/firms/acme/users/u1', host, user('First'), key);
      expect(retry.status).toBe(first.status);
      expect(retry.body).toEqual(first.body);
      expect(retry.headers.get('idempotent-replayed')).toBe('true');
      const events = (await service.events()).filter((e) => e.streamId === 'user-acme/u1');
      expect(events.map((e) => e.data.name)).toEqual(['First', 'Changed']);
    });

    it('a refusal is an answer too, and is replayed', async () => {
      const key = { 'idempotency-key': 'cancel-1' };
      const first = await service.api.post(
        '/v1/firms/fresh/mfa/subscription/cancel',
        operator,
        {},
        key,
      );
      expect(first.status).toBe(409);
      const retry = await service.api.post(
        '/v1/firms/fresh/mfa/subscription/cancel',
        operator,
        {},
        key,
      );
      expect(retry.status).toBe(409);
      expect(retry.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      expect(retry.body).toEqual(first.body);
    });

    it('the same key with another body is refused with 422', async () => {
      const key = { 'idempotency-key': 'req-456' };
      await service.api.put('/v1/firms/acme/users/u2', host, user('Two'), key);
      const reused = await service.api.put('/v1/firms/acme/users/u2', host, user('Other'), key);
      expect(reused.status).toBe(422);
      expect(reused.body.type).toBe('/problems/idempotency-key-reused');
    });

    it('keys belong to their caller: another caller with the same key runs its own command', async () => {
      const key = { 'idempotency-key': 'shared-key' };
      await service.api.put(
        '/v1/firms/acme/users/u3',
        token('host', { sub: 'host-a' }),
        user('A'),
        key,
      );
      const other = await service.api.put(
        '/v1/firms/acme/users/u4',
        token('host', { sub: 'host-b' }),
        user('B'),
        key,
      );
      expect(other.status).toBe(200);
      expect(other.headers.get('idempotent-replayed')).toBeNull();
      expect(other.body.userId).toBe('u4');
    });

    it('keys are scoped by the firm in the path: a host without a firm claim reuses a key in two firms', async () => {
      const key = { 'idempotency-key': 'sync-user-42' };
      const inA = await service.api.put('/v1/firms/firm-a/users/u42', host, user('In A'), key);
      const inB = await service.api.put('/v1/firms/firm-b/users/u42', host, user('In B'), key);
      expect(inA.status).toBe(200);
      expect(inB.status).toBe(200);
      expect(inB.headers.get('idempotent-replayed')).toBeNull();
      const log = await service.events();
      expect(log.filter((e) => e.streamId === 'user-firm-a/u42').map((e) => e.data.name)).toEqual([
        'In A',
      ]);
      expect(log.filter((e) => e.streamId === 'user-firm-b/u42').map((e) => e.data.name)).toEqual([
        'In B',
      ]);
      // The same body in a second firm is that firm's command too, not firm a's answer.
      const again = await service.api.put('/v1/firms/firm-c/users/u42', host, user('In A'), key);
      expect(again.headers.get('idempotent-replayed')).toBeNull();
      expect((await service.events()).filter((e) => e.streamId === 'user-firm-c/u42')).toHaveLength(
        1,
      );
    });

    it('concurrent retries of one keyed command append once', async () => {
      const key = { 'idempotency-key': 'burst-1' };
      const answers = await Promise.all(
        Array.from({ length: 8 }, () =>
          service.api.put('/v1/firms/acme/users/u5', host, user('Burst'), key),
        ),
      );
      for (const res of answers) expect([200, 409]).toContain(res.status);
      expect(answers.some((res) => res.status === 200)).toBe(true);
      const events = (await service.events()).filter((e) => e.streamId === 'user-acme/u5');
      expect(events).toHaveLength(1);
    });
  });

  it('concurrent commands on one stream are all decided on fresh state: each lands once, in order', async () => {
    const writes = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        service.api.put('/v1/firms/acme/users/contended', host, user(`Name ${i}`)),
      ),
    );
    for (const res of writes) expect(res.status).toBe(200);
    const events = (await service.events()).filter((e) => e.streamId === 'user-acme/contended');
    // The first write registers; every other one changed the name, so each is an update.
    expect(events).toHaveLength(50);
    expect(events.map((e) => e.revision)).toEqual(events.map((_, i) => BigInt(i)));
    expect(new Set(events.map((e) => e.data.name)).size).toBe(50);
    expect(new Set(writes.map((res) => res.body.position)).size).toBe(50);
  });

  it('every event carries its metadata: ids, firm, actor, correlation and causation, time, version, hash chain', async () => {
    const res = await service.api.request('POST', '/v1/firms/meta/mfa/subscription/request', {
      token: token('superuser', { firm: 'meta', sub: 'admin-9' }),
      body: { plan: 'standard' },
      headers: { 'x-correlation-id': 'trace-abc' },
    });
    expect(res.headers.get('x-correlation-id')).toBe('trace-abc');
    const [event] = (await service.events()).filter((e) => e.streamId === 'subscription-meta');
    expect(event.metadata).toEqual({
      eventId: expect.stringMatching(/^[0-9a-f-]{36}$/),
      firmId: 'meta',
      actor: { id: 'admin-9', role: 'superuser' },
      correlationId: 'trace-abc',
      causationId: event.metadata.commandId,
      commandId: expect.stringMatching(/^[0-9a-f-]{36}$/),
      occurredAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
      schemaVersion: 1,
      // The stream's first event: its hash chains it to nothing before (ADR 0017).
      hash: expect.stringMatching(/^[0-9a-f]{64}$/),
      previousHash: null,
    });
    expect(BigInt(res.body.position)).toBe(event.position);
  });

  it('GET /health answers without a token, with the head of the log', async () => {
    const res = await service.api.get('/health');
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      status: 'ok',
      eventStore: { headPosition: expect.stringMatching(/^\d+$/) },
    });
    const head = (await service.events()).at(-1)!.position;
    expect(res.body.eventStore.headPosition).toBe(String(head));
  });

  it('serves the OpenAPI description and its UI', async () => {
    const spec = await service.api.get('/openapi.json');
    expect(spec.status).toBe(200);
    expect(spec.body.openapi).toMatch(/^3\./);
    expect(Object.keys(spec.body.paths)).toEqual(
      expect.arrayContaining([
        '/v1/firms/{firmId}/mfa/subscription/request',
        '/v1/firms/{firmId}/mfa/licenses',
        '/v1/firms/{firmId}/mfa/enablement/corporations/{corporationId}',
        '/v1/firms/{firmId}/users/{userId}',
      ]),
    );
    const changeLicenses = spec.body.paths['/v1/firms/{firmId}/mfa/licenses'].put;
    expect(changeLicenses.description).toContain('Roles: `operator`');
    expect(Object.keys(changeLicenses.responses)).toEqual(
      expect.arrayContaining(['200', '400', '401', '403', '409']),
    );
    expect(changeLicenses.parameters.map((p: { name: string }) => p.name)).toEqual(
      expect.arrayContaining(['firmId', 'Idempotency-Key']),
    );
    // The verification endpoints ignore the key, and their descriptions say so.
    const mfa = '/v1/firms/{firmId}/users/{userId}/mfa';
    for (const path of [
      `${mfa}/totp/verify`,
      `${mfa}/webauthn/authentication/options`,
      `${mfa}/webauthn/authentication/verify`,
    ]) {
      const operation = spec.body.paths[path].post;
      expect(operation.description).toContain('ignores `Idempotency-Key`');
      expect(operation.parameters.map((p: { name: string }) => p.name)).not.toContain(
        'Idempotency-Key',
      );
    }
    expect(spec.body.info.description).toContain('scoped by caller and by the firm in the path');
    const ui = await service.api.get('/docs');
    expect(ui.status).toBe(200);
    expect(ui.text).toContain('swagger');
  });

  function user(name: string) {
    return { role: 'case-manager', name, email: 'someone@firm.example' };
  }

  it('uses the superuser token only for its own firm', async () => {
    expect((await service.api.get('/v1/firms/other/mfa/subscription', superuser)).status).toBe(403);
  });
});
