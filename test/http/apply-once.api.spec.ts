import type { RecordedEvent } from '../../src/event-store/event-store.port';
import {
  Api,
  ApiResponse,
  forgetStoredAnswers as forgetAnswers,
  RunningService,
  startService,
  TestClock,
} from '../support/harness';
import {
  activeFirm,
  enrollTotp,
  expectOk,
  host,
  mfaPath,
  oathtool,
  operator,
  registerUser,
  secretOf,
  superuserOf,
} from '../support/mfa';

/*
 * DESIGN §6 and issue 11 item 1: a command applies once, whatever is retried.
 * The stored first answer of an Idempotency-Key is one line of defence; this
 * file takes it away (a crash between the append and the record, a retry
 * reaching another host, or the 24 h expiry all lose it) and checks that the
 * retry, decided on the newer state the stream has by then, still appends
 * nothing and answers the first outcome: the command id is in the stream.
 */
describe('A command applies once, even when its stored answer is lost', () => {
  let service: RunningService;
  const clock = new TestClock();
  let firmCounter = 0;
  const api = (): Api => service.api;

  beforeAll(async () => (service = await startService({ clock })));
  afterAll(() => service.stop());

  const forgetStoredAnswers = () => forgetAnswers(service.dataDir);

  const withKey = (key: string) => ({ 'idempotency-key': key });
  const send = (method: string, path: string, token: string, body: unknown, key?: string) =>
    api().request(method, path, { token, body, headers: key ? withKey(key) : {} });
  const byCommand = (events: RecordedEvent[], commandId: string) =>
    events.filter((event) => event.metadata.commandId === commandId);

  /**
   * Runs `first` with a key, lets `meanwhile` change the same streams, loses
   * the stored answer, retries `first` with the key: the log must hold the
   * first run's events once, and the retry must answer as the first run did.
   */
  async function retriedAfterTheStateMoved(
    first: { method: string; path: string; token: string; body: unknown },
    meanwhile: () => Promise<void>,
  ): Promise<{ first: ApiResponse; retry: ApiResponse }> {
    const key = `retry-${++firmCounter}`;
    const correlationId = `first-run-${firmCounter}`;
    const answer = await api().request(first.method, first.path, {
      token: first.token,
      body: first.body,
      headers: { ...withKey(key), 'x-correlation-id': correlationId },
    });
    expect(answer.status).toBeLessThan(300);
    // The command's own events (process managers' follow-ups carry the correlation id too).
    const appended = (await service.events()).filter(
      (event) =>
        event.metadata.correlationId === correlationId && event.metadata.actor.role !== 'system',
    );
    expect(appended.length).toBeGreaterThan(0);
    const { commandId } = appended[0].metadata;
    expect(byCommand(await service.events(), commandId)).toEqual(appended);

    await meanwhile();
    forgetStoredAnswers();
    const retry = await send(first.method, first.path, first.token, first.body, key);

    expect(byCommand(await service.events(), commandId)).toEqual(appended);
    expect(retry.status).toBe(answer.status);
    expect(retry.body.position).toBe(answer.body.position);
    return { first: answer, retry };
  }

  const newFirm = () => `once-${++firmCounter}`;
  const admin = superuserOf;
  const base = (firmId: string) => `/v1/firms/${firmId}/mfa`;

  it('a reset retried after the user enrolled again leaves the new factor alone', async () => {
    const firmId = newFirm();
    await activeFirm(api(), firmId, 5);
    await registerUser(api(), firmId, 'ann');
    await enrollTotp(api(), firmId, 'ann', clock.now());
    const { first, retry } = await retriedAfterTheStateMoved(
      {
        method: 'POST',
        path: `${mfaPath(firmId, 'ann')}/reset`,
        token: admin(firmId),
        body: { reason: 'Lost phone' },
      },
      async () => {
        clock.advance(60_000);
        await enrollTotp(api(), firmId, 'ann', clock.now());
      },
    );
    expect(retry.body).toEqual(first.body);
    const factors = await api().get(`${mfaPath(firmId, 'ann')}/factors`, host);
    expect(factors.body).toHaveLength(1);
    expect(
      (await api().get(`${mfaPath(firmId, 'ann')}/login-requirement`, host)).body,
    ).toMatchObject({ decision: 'verify' });
  });

  describe('every kind of command', () => {
    it('subscription request, retried after the activation', async () => {
      const firmId = newFirm();
      await retriedAfterTheStateMoved(
        {
          method: 'POST',
          path: `${base(firmId)}/subscription/request`,
          token: admin(firmId),
          body: { plan: 'standard' },
        },
        async () => {
          expectOk(
            await api().post(`${base(firmId)}/subscription/activate`, operator, {
              plan: 'standard',
              licenseCount: 3,
            }),
          );
        },
      );
    });

    it('activation, retried after a cancellation', async () => {
      const firmId = newFirm();
      expectOk(await api().post(`${base(firmId)}/subscription/request`, admin(firmId), {}));
      await retriedAfterTheStateMoved(
        {
          method: 'POST',
          path: `${base(firmId)}/subscription/activate`,
          token: operator,
          body: { plan: 'standard', licenseCount: 3 },
        },
        async () => {
          expectOk(await api().post(`${base(firmId)}/subscription/cancel`, operator, {}));
        },
      );
      expect((await api().get(`${base(firmId)}/subscription`, operator)).body.status).toBe(
        'cancelled',
      );
    });

    it('a license change, retried after another one', async () => {
      const firmId = newFirm();
      await activeFirm(api(), firmId, 3);
      await retriedAfterTheStateMoved(
        {
          method: 'PUT',
          path: `${base(firmId)}/licenses`,
          token: operator,
          body: { licenseCount: 10 },
        },
        async () => {
          expectOk(await api().put(`${base(firmId)}/licenses`, operator, { licenseCount: 20 }));
        },
      );
      expect((await api().get(`${base(firmId)}/subscription`, operator)).body.licenseCount).toBe(
        20,
      );
    });

    it('a cancellation, retried after the re-activation', async () => {
      const firmId = newFirm();
      await activeFirm(api(), firmId, 3);
      await retriedAfterTheStateMoved(
        {
          method: 'POST',
          path: `${base(firmId)}/subscription/cancel`,
          token: operator,
          body: {},
        },
        async () => {
          expectOk(
            await api().post(`${base(firmId)}/subscription/activate`, operator, {
              plan: 'standard',
              licenseCount: 3,
            }),
          );
        },
      );
      expect((await api().get(`${base(firmId)}/subscription`, operator)).body.status).toBe(
        'active',
      );
    });

    it.each([
      ['case-managers', 'enablement/case-managers', { enabled: true }, { enabled: false }],
      [
        'vendor-case-managers',
        'enablement/vendor-case-managers',
        { enabled: true },
        { enabled: false },
      ],
      [
        'corporation mode',
        'enablement/corporations',
        { mode: 'all', corpUsers: true, foreignNationals: true },
        { mode: 'specific' },
      ],
      [
        'a specific corporation',
        'enablement/corporations/globex',
        { corpUsers: true, foreignNationals: false },
        { corpUsers: false, foreignNationals: true },
      ],
    ])('enablement of %s, retried after it changed', async (_name, path, body, other) => {
      const firmId = newFirm();
      await activeFirm(api(), firmId, 3, {});
      if (path.startsWith('enablement/corporations/')) {
        expectOk(
          await api().put(`${base(firmId)}/enablement/corporations`, admin(firmId), {
            mode: 'specific',
          }),
        );
      }
      await retriedAfterTheStateMoved(
        { method: 'PUT', path: `${base(firmId)}/${path}`, token: admin(firmId), body },
        async () => {
          expectOk(await api().put(`${base(firmId)}/${path}`, admin(firmId), other));
        },
      );
    });

    it('removing a specific corporation, retried after it was added back', async () => {
      const firmId = newFirm();
      await activeFirm(api(), firmId, 3, {});
      const path = `${base(firmId)}/enablement/corporations/globex`;
      const switches = { corpUsers: true, foreignNationals: true };
      expectOk(
        await api().put(`${base(firmId)}/enablement/corporations`, admin(firmId), {
          mode: 'specific',
        }),
      );
      expectOk(await api().put(path, admin(firmId), switches));
      await retriedAfterTheStateMoved(
        { method: 'DELETE', path, token: admin(firmId), body: undefined },
        async () => expectOk(await api().put(path, admin(firmId), switches)),
      );
    });

    it('a user registration, retried after the host changed the user', async () => {
      const firmId = newFirm();
      const path = `/v1/firms/${firmId}/users/bob`;
      const profile = (name: string) => ({
        role: 'case-manager',
        name,
        email: 'bob@firm.example',
      });
      await retriedAfterTheStateMoved(
        { method: 'PUT', path, token: host, body: profile('First') },
        async () => expectOk(await api().put(path, host, profile('Changed'))),
      );
    });

    it('a deactivation, retried after the reactivation; a reactivation, after a deactivation', async () => {
      const firmId = newFirm();
      await activeFirm(api(), firmId, 3);
      await registerUser(api(), firmId, 'cid');
      const users = `/v1/firms/${firmId}/users/cid`;
      await retriedAfterTheStateMoved(
        {
          method: 'POST',
          path: `${users}/deactivate`,
          token: host,
          body: { reason: 'account-disabled' },
        },
        async () => expectOk(await api().post(`${users}/reactivate`, host, {})),
      );
      expectOk(await api().post(`${users}/deactivate`, host, { reason: 'deleted' }));
      await retriedAfterTheStateMoved(
        { method: 'POST', path: `${users}/reactivate`, token: host, body: {} },
        async () => expectOk(await api().post(`${users}/deactivate`, host, { reason: 'deleted' })),
      );
      const log = (await service.events()).filter(
        (event) => event.streamId === `user-${firmId}/cid`,
      );
      expect(log.map((event) => event.type).at(-1)).toBe('UserDeactivated');
    });

    it('a corporation registration, retried after a rename', async () => {
      const firmId = newFirm();
      const path = `/v1/firms/${firmId}/corporations/initech`;
      await retriedAfterTheStateMoved(
        { method: 'PUT', path, token: host, body: { name: 'Initech' } },
        async () => expectOk(await api().put(path, host, { name: 'Initech Ltd' })),
      );
    });

    it('a TOTP confirmation, retried after a reset, answers the first answer and appends nothing', async () => {
      const firmId = newFirm();
      await activeFirm(api(), firmId, 3);
      await registerUser(api(), firmId, 'eve');
      const started = await api().post(`${mfaPath(firmId, 'eve')}/totp/enrollment`, host, {});
      const code = oathtool(secretOf(started.body.otpauthUri), clock.now());
      const { first, retry } = await retriedAfterTheStateMoved(
        {
          method: 'POST',
          path: `${mfaPath(firmId, 'eve')}/totp/enrollment/${started.body.enrollmentId}/confirm`,
          token: host,
          body: { code },
        },
        async () =>
          expectOk(
            await api().post(`${mfaPath(firmId, 'eve')}/reset`, admin(firmId), {
              reason: 'Lost phone',
            }),
          ),
      );
      expect(retry.body).toEqual(first.body);
      expect((await api().get(`${mfaPath(firmId, 'eve')}/factors`, host)).body).toEqual([]);
    });

    it('a TOTP confirmation, retried after the user was deactivated, answers the first answer', async () => {
      const firmId = newFirm();
      await activeFirm(api(), firmId, 3);
      await registerUser(api(), firmId, 'fay');
      const started = await api().post(`${mfaPath(firmId, 'fay')}/totp/enrollment`, host, {});
      const code = oathtool(secretOf(started.body.otpauthUri), clock.now());
      const { first, retry } = await retriedAfterTheStateMoved(
        {
          method: 'POST',
          path: `${mfaPath(firmId, 'fay')}/totp/enrollment/${started.body.enrollmentId}/confirm`,
          token: host,
          body: { code },
        },
        async () =>
          expectOk(
            await api().post(`/v1/firms/${firmId}/users/fay/deactivate`, host, {
              reason: 'deleted',
            }),
          ),
      );
      expect(retry.body).toEqual(first.body);
    });

    it('a TOTP confirmation, retried, checks the code and answers the first answer', async () => {
      const firmId = newFirm();
      await activeFirm(api(), firmId, 3);
      await registerUser(api(), firmId, 'dee');
      const started = await api().post(`${mfaPath(firmId, 'dee')}/totp/enrollment`, host, {});
      const code = oathtool(secretOf(started.body.otpauthUri), clock.now());
      const path = `${mfaPath(firmId, 'dee')}/totp/enrollment/${started.body.enrollmentId}/confirm`;
      const key = `confirm-${firmId}`;
      const first = await send('POST', path, host, { code }, key);
      expectOk(first);
      forgetStoredAnswers();
      // A retry after the factor exists checks the code, then answers the first answer.
      const retry = await send('POST', path, host, { code }, key);
      expect(retry.status).toBe(200);
      expect(retry.body.factorId).toBe(first.body.factorId);
      const confirmations = (await service.events()).filter(
        (event) => event.type === 'FactorConfirmed' && event.metadata.firmId === firmId,
      );
      expect(confirmations).toHaveLength(1);
    });
  });
});
