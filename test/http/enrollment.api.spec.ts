import { RunningService, startService, TestClock, token } from '../support/harness';
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
import { mailSettled } from '../support/notifications';

/** DESIGN §2.4, §3, §6; API.md Enrollment: TOTP enrollment, seats, reset and recycling. */
describe('Enrollment over HTTP', () => {
  let service: RunningService;
  const clock = new TestClock(new Date('2026-03-02T10:00:00.000Z'));
  let firmCounter = 0;
  const newFirm = () => `firm-${++firmCounter}`;

  beforeAll(async () => (service = await startService({ clock })));
  afterAll(() => service.stop());

  const api = () => service.api;
  const requirement = async (firmId: string, userId: string) =>
    (await api().get(`${mfaPath(firmId, userId)}/login-requirement`, host)).body;
  const seatEvents = async (firmId: string) =>
    (await service.events()).filter(
      (event) =>
        event.streamId === `subscription-${firmId}` &&
        (event.type === 'SeatAssigned' || event.type === 'SeatReleased'),
    );

  describe('TOTP enrollment', () => {
    it('starts with an otpauth URI for the service and the user, a QR code and a 10-minute expiry', async () => {
      const firmId = newFirm();
      await activeFirm(api(), firmId, 5);
      await registerUser(api(), firmId, 'ann', { email: 'ann@lawfirm.example' });
      const res = await api().post(`${mfaPath(firmId, 'ann')}/totp/enrollment`, host, {
        label: 'Work phone',
      });
      expect(res.status).toBe(201);
      const uri = new URL(res.body.otpauthUri);
      expect(uri.protocol).toBe('otpauth:');
      expect(uri.host).toBe('totp');
      expect(decodeURIComponent(uri.pathname)).toBe(
        `/${service.config.webauthn.rpName}:ann@lawfirm.example`,
      );
      expect(uri.searchParams.get('issuer')).toBe(service.config.webauthn.rpName);
      expect(secretOf(res.body.otpauthUri)).toMatch(/^[A-Z2-7]{32}$/);
      expect(res.body.qrCodeSvg).toMatch(/^<svg[\s\S]*<\/svg>\s*$/);
      expect(Date.parse(res.body.expiresAt) - clock.now().getTime()).toBe(10 * 60 * 1000);
      // Started, not enrolled: no seat, no factor.
      expect(await seatEvents(firmId)).toEqual([]);
      expect((await requirement(firmId, 'ann')).decision).toBe('enroll');
    });

    it('confirms with the current code, or the step just before or after, computed by oathtool', async () => {
      const firmId = newFirm();
      await activeFirm(api(), firmId, 5);
      for (const [userId, steps] of [
        ['now', 0],
        ['before', -1],
        ['after', 1],
      ] as const) {
        await registerUser(api(), firmId, userId);
        const started = await api().post(`${mfaPath(firmId, userId)}/totp/enrollment`, host, {});
        const code = oathtool(secretOf(started.body.otpauthUri), clock.now(), steps);
        const confirmed = await api().post(
          `${mfaPath(firmId, userId)}/totp/enrollment/${started.body.enrollmentId}/confirm`,
          host,
          { code },
        );
        expect(confirmed.status).toBe(200);
        expect(confirmed.body.factorId).toEqual(expect.any(String));
        expect(await requirement(firmId, userId)).toEqual({
          decision: 'verify',
          methods: ['totp'],
        });
      }
    });

    it('refuses a code two steps away or wrong with 400 invalid-code, and changes nothing', async () => {
      const firmId = newFirm();
      await activeFirm(api(), firmId, 5);
      await registerUser(api(), firmId, 'ann');
      const started = await api().post(`${mfaPath(firmId, 'ann')}/totp/enrollment`, host, {});
      const secret = secretOf(started.body.otpauthUri);
      // The emails of the set-up go out first: they are not this request's doing.
      await mailSettled(service);
      const before = (await service.events()).length;
      for (const code of [oathtool(secret, clock.now(), 2), oathtool(secret, clock.now(), -2)]) {
        const res = await api().post(
          `${mfaPath(firmId, 'ann')}/totp/enrollment/${started.body.enrollmentId}/confirm`,
          host,
          { code },
        );
        expect(res.status).toBe(400);
        expect(res.body.type).toBe('/problems/invalid-code');
      }
      expect((await service.events()).length).toBe(before);
      expect((await requirement(firmId, 'ann')).decision).toBe('enroll');
    });

    it('an expired enrollment cannot be confirmed', async () => {
      const firmId = newFirm();
      await activeFirm(api(), firmId, 5);
      await registerUser(api(), firmId, 'ann');
      const started = await api().post(`${mfaPath(firmId, 'ann')}/totp/enrollment`, host, {});
      clock.advance(10 * 60 * 1000);
      const res = await api().post(
        `${mfaPath(firmId, 'ann')}/totp/enrollment/${started.body.enrollmentId}/confirm`,
        host,
        { code: oathtool(secretOf(started.body.otpauthUri), clock.now()) },
      );
      expect(res.status).toBe(409);
      expect(res.body.type).toBe('/problems/enrollment-expired');
      expect(await seatEvents(firmId)).toEqual([]);
    });

    it('an unknown enrollment is 404, an unknown user is 404', async () => {
      const firmId = newFirm();
      await activeFirm(api(), firmId, 5);
      await registerUser(api(), firmId, 'ann');
      const unknownEnrollment = await api().post(
        `${mfaPath(firmId, 'ann')}/totp/enrollment/no-such-enrollment/confirm`,
        host,
        { code: '123456' },
      );
      expect(unknownEnrollment.status).toBe(404);
      expect(unknownEnrollment.body.type).toBe('/problems/enrollment-not-found');
      const unknownUser = await api().post(`${mfaPath(firmId, 'ghost')}/totp/enrollment`, host, {});
      expect(unknownUser.status).toBe(404);
      expect(unknownUser.body.type).toBe('/problems/user-not-found');
    });

    it('a user who is not MFA-enabled cannot start: 409 mfa-not-enabled', async () => {
      const firmId = newFirm();
      await activeFirm(api(), firmId, 5); // case managers only
      await registerUser(api(), firmId, 'vic', { role: 'vendor-case-manager' });
      const res = await api().post(`${mfaPath(firmId, 'vic')}/totp/enrollment`, host, {});
      expect(res.status).toBe(409);
      expect(res.body.type).toBe('/problems/mfa-not-enabled');
      expect(
        (await service.events()).some(
          (e) => e.streamId === `user-${firmId}/vic` && e.type !== 'UserRegistered',
        ),
      ).toBe(false);
    });

    it('a retried start with the same Idempotency-Key answers the same enrollment and secret', async () => {
      const firmId = newFirm();
      await activeFirm(api(), firmId, 5);
      await registerUser(api(), firmId, 'ann');
      const headers = { 'idempotency-key': 'start-once' };
      const first = await api().post(
        `${mfaPath(firmId, 'ann')}/totp/enrollment`,
        host,
        {},
        headers,
      );
      const again = await api().post(
        `${mfaPath(firmId, 'ann')}/totp/enrollment`,
        host,
        {},
        headers,
      );
      expect(first.status).toBe(201);
      expect(again.status).toBe(201);
      expect(again.body).toEqual(first.body);
      const started = (await service.events()).filter(
        (e) => e.streamId === `user-${firmId}/ann` && e.type === 'TotpEnrollmentStarted',
      );
      expect(started).toHaveLength(1);
    });

    it('a start retried after its confirmation is a clear 409, never a new secret under the same enrollment', async () => {
      const firmId = newFirm();
      await activeFirm(api(), firmId, 5);
      await registerUser(api(), firmId, 'ann');
      const headers = { 'idempotency-key': 'start-then-confirm' };
      const path = `${mfaPath(firmId, 'ann')}/totp/enrollment`;
      const first = await api().post(path, host, {}, headers);
      expect(first.status).toBe(201);
      const confirmed = await api().post(`${path}/${first.body.enrollmentId}/confirm`, host, {
        code: oathtool(secretOf(first.body.otpauthUri), clock.now()),
      });
      expect(confirmed.status).toBe(200);

      const again = await api().post(path, host, {}, headers);
      expect(again.status).toBe(409);
      expect(again.body.type).toBe('/problems/enrollment-already-confirmed');
      expect(JSON.stringify(again.body)).not.toContain(secretOf(first.body.otpauthUri));
      const started = (await service.events()).filter(
        (e) => e.streamId === `user-${firmId}/ann` && e.type === 'TotpEnrollmentStarted',
      );
      expect(started).toHaveLength(1);
    });

    it('confirming an enrollment already confirmed checks the code first: a wrong one is 400', async () => {
      const firmId = newFirm();
      await activeFirm(api(), firmId, 5);
      await registerUser(api(), firmId, 'ann');
      const { enrollmentId, secret, factorId } = await enrollTotp(
        api(),
        firmId,
        'ann',
        clock.now(),
      );
      const confirm = (code: string) =>
        api().post(`${mfaPath(firmId, 'ann')}/totp/enrollment/${enrollmentId}/confirm`, host, {
          code,
        });
      const wrong = await confirm(oathtool(secret, clock.now(), 5));
      expect(wrong.status).toBe(400);
      expect(wrong.body.type).toBe('/problems/invalid-code');
      const right = await confirm(oathtool(secret, clock.now()));
      expect(right.status).toBe(200);
      expect(right.body.factorId).toBe(factorId);
      const confirmations = (await service.events()).filter(
        (e) => e.streamId === `user-${firmId}/ann` && e.type === 'FactorConfirmed',
      );
      expect(confirmations).toHaveLength(1);
    });

    it('a user holds at most five authenticator apps: the sixth start is 409 totp-factor-limit', async () => {
      const firmId = newFirm();
      await activeFirm(api(), firmId, 5);
      await registerUser(api(), firmId, 'ann');
      for (let i = 0; i < 5; i++) await enrollTotp(api(), firmId, 'ann', clock.now());
      const sixth = await api().post(`${mfaPath(firmId, 'ann')}/totp/enrollment`, host, {});
      expect(sixth.status).toBe(409);
      expect(sixth.body).toMatchObject({ type: '/problems/totp-factor-limit', maxTotpFactors: 5 });
      expect((await api().get(`${mfaPath(firmId, 'ann')}/factors`, host)).body).toHaveLength(5);
    });

    it('at most three enrollments are pending: a fourth start replaces the oldest (a reloaded page)', async () => {
      const firmId = newFirm();
      await activeFirm(api(), firmId, 5);
      await registerUser(api(), firmId, 'ann');
      const starts: Array<{ enrollmentId: string; otpauthUri: string }> = [];
      for (let i = 0; i < 4; i++) {
        const started = await api().post(`${mfaPath(firmId, 'ann')}/totp/enrollment`, host, {});
        expect(started.status).toBe(201);
        starts.push(started.body);
      }
      const confirm = (start: { enrollmentId: string; otpauthUri: string }) =>
        api().post(
          `${mfaPath(firmId, 'ann')}/totp/enrollment/${start.enrollmentId}/confirm`,
          host,
          {
            code: oathtool(secretOf(start.otpauthUri), clock.now()),
          },
        );
      const oldest = await confirm(starts[0]);
      expect(oldest.status).toBe(404);
      expect(oldest.body.type).toBe('/problems/enrollment-not-found');
      expect((await confirm(starts[3])).status).toBe(200);
      const replaced = (await service.events()).find(
        (e) => e.type === 'TotpEnrollmentStarted' && e.data.enrollmentId === starts[3].enrollmentId,
      );
      expect(replaced?.data.replaces).toEqual([starts[0].enrollmentId]);
    });

    it('a user holding a seat adds another factor without taking a second seat', async () => {
      const firmId = newFirm();
      await activeFirm(api(), firmId, 1);
      await registerUser(api(), firmId, 'ann');
      await enrollTotp(api(), firmId, 'ann', clock.now());
      const second = await enrollTotp(api(), firmId, 'ann', clock.now());
      expect(second.factorId).toEqual(expect.any(String));
      const factors = await api().get(`${mfaPath(firmId, 'ann')}/factors`, host);
      expect(factors.body).toHaveLength(2);
      expect((await seatEvents(firmId)).map((e) => e.type)).toEqual(['SeatAssigned']);
    });
  });

  describe('exhausted licenses', () => {
    it('with no seat left, starting and confirming answer 409 license-exhausted and the user bypasses MFA; more licenses turn it back to enroll', async () => {
      const firmId = newFirm();
      await activeFirm(api(), firmId, 1);
      await registerUser(api(), firmId, 'ann');
      await registerUser(api(), firmId, 'bob');
      const bobStarted = await api().post(`${mfaPath(firmId, 'bob')}/totp/enrollment`, host, {});
      expect(bobStarted.status).toBe(201);
      await enrollTotp(api(), firmId, 'ann', clock.now()); // takes the last seat

      const start = await api().post(`${mfaPath(firmId, 'bob')}/totp/enrollment`, host, {});
      expect(start.status).toBe(409);
      expect(start.body.type).toBe('/problems/license-exhausted');
      const confirm = await api().post(
        `${mfaPath(firmId, 'bob')}/totp/enrollment/${bobStarted.body.enrollmentId}/confirm`,
        host,
        { code: oathtool(secretOf(bobStarted.body.otpauthUri), clock.now()) },
      );
      expect(confirm.status).toBe(409);
      expect(confirm.body.type).toBe('/problems/license-exhausted');
      expect((await seatEvents(firmId)).map((e) => e.data.userId)).toEqual(['ann']);

      expect(await requirement(firmId, 'bob')).toMatchObject({ decision: 'bypass', methods: [] });
      expect((await requirement(firmId, 'bob')).reason).toMatch(/licenses/);
      expect(await requirement(firmId, 'ann')).toEqual({ decision: 'verify', methods: ['totp'] });

      expectOk(await api().put(`/v1/firms/${firmId}/mfa/licenses`, operator, { licenseCount: 2 }));
      expect((await requirement(firmId, 'bob')).decision).toBe('enroll');
    });

    it('lowering the licenses below the seats in use is refused unless forced; forced, nobody new gets a seat', async () => {
      const firmId = newFirm();
      await activeFirm(api(), firmId, 2);
      await registerUser(api(), firmId, 'ann');
      await registerUser(api(), firmId, 'bob');
      await registerUser(api(), firmId, 'cid');
      await enrollTotp(api(), firmId, 'ann', clock.now());
      await enrollTotp(api(), firmId, 'bob', clock.now());
      const refused = await api().put(`/v1/firms/${firmId}/mfa/licenses`, operator, {
        licenseCount: 1,
      });
      expect(refused.status).toBe(409);
      expect(refused.body).toMatchObject({
        type: '/problems/license-below-usage',
        licenseCount: 1,
        seatsInUse: 2,
      });
      expectOk(
        await api().put(`/v1/firms/${firmId}/mfa/licenses`, operator, {
          licenseCount: 1,
          force: true,
        }),
      );
      expect((await requirement(firmId, 'ann')).decision).toBe('verify');
      expect((await requirement(firmId, 'cid')).decision).toBe('bypass');
      // A reset brings usage down to the count, still no free seat; a second one frees one.
      const admin = superuserOf(firmId);
      expectOk(
        await api().post(`${mfaPath(firmId, 'ann')}/reset`, admin, { reason: 'lost phone' }),
      );
      expect((await requirement(firmId, 'cid')).decision).toBe('bypass');
      expectOk(await api().post(`${mfaPath(firmId, 'bob')}/reset`, admin, { reason: 'left' }));
      expect((await requirement(firmId, 'cid')).decision).toBe('enroll');
    });
  });

  describe('reset and recycling', () => {
    it('a superuser reset removes every factor at once, frees the seat with the reason, and destroys the key', async () => {
      const firmId = newFirm();
      await activeFirm(api(), firmId, 1);
      await registerUser(api(), firmId, 'ann');
      const first = await enrollTotp(api(), firmId, 'ann', clock.now());
      await enrollTotp(api(), firmId, 'ann', clock.now());
      const reset = await api().post(`${mfaPath(firmId, 'ann')}/reset`, superuserOf(firmId), {
        reason: 'Changed phone',
      });
      expect(reset.status).toBe(200);
      expect(reset.body.factorsRemoved).toBe(2);

      expect((await api().get(`${mfaPath(firmId, 'ann')}/factors`, host)).body).toEqual([]);
      expect(await requirement(firmId, 'ann')).toMatchObject({ decision: 'enroll' });
      const verify = await api().post(`${mfaPath(firmId, 'ann')}/totp/verify`, host, {
        code: oathtool(first.secret, clock.now(), 1),
      });
      expect(verify.status).toBe(409);
      expect(verify.body.type).toBe('/problems/factor-not-enrolled');

      const events = await service.events();
      const resetEvent = events.find(
        (e) => e.type === 'EnrollmentReset' && e.streamId === `user-${firmId}/ann`,
      );
      expect(resetEvent?.data).toMatchObject({
        reason: 'Changed phone',
        trigger: 'superuser',
        generation: 1,
      });
      expect((resetEvent?.data.factorIds as string[]).length).toBe(2);
      expect((await seatEvents(firmId)).map((e) => e.type)).toEqual([
        'SeatAssigned',
        'SeatReleased',
      ]);

      // The seat is free for someone else at once.
      await registerUser(api(), firmId, 'bob');
      await enrollTotp(api(), firmId, 'bob', clock.now());
      // And the user may enroll again, with a new secret.
      expect((await requirement(firmId, 'ann')).decision).toBe('bypass');
    });

    it('reset by anyone but a superuser of the firm is forbidden', async () => {
      const firmId = newFirm();
      await activeFirm(api(), firmId, 1);
      await registerUser(api(), firmId, 'ann');
      for (const caller of [
        host,
        operator,
        superuserOf('other-firm'),
        token('user', { firm: firmId, sub: 'ann' }),
      ]) {
        const res = await api().post(`${mfaPath(firmId, 'ann')}/reset`, caller, { reason: 'x' });
        expect(res.status).toBe(403);
      }
    });

    it('deactivating a user resets its enrollment and frees the seat; reactivation does not restore factors', async () => {
      const firmId = newFirm();
      await activeFirm(api(), firmId, 1);
      await registerUser(api(), firmId, 'ann');
      await enrollTotp(api(), firmId, 'ann', clock.now());
      const deactivated = await api().post(`/v1/firms/${firmId}/users/ann/deactivate`, host, {
        reason: 'record-inactivated',
      });
      expect(deactivated.status).toBe(200);
      expect(deactivated.body).toMatchObject({ status: 'inactive', enrolled: false });
      const userEvents = (await service.events()).filter(
        (e) => e.streamId === `user-${firmId}/ann`,
      );
      const [lastButOne, last] = userEvents.slice(-2);
      // One append: the deactivation and the reset it causes.
      expect([lastButOne.type, last.type]).toEqual(['UserDeactivated', 'EnrollmentReset']);
      expect(last.data).toMatchObject({ trigger: 'deactivation', reason: 'record-inactivated' });
      expect(last.metadata.commandId).toBe(lastButOne.metadata.commandId);
      expect((await seatEvents(firmId)).map((e) => e.type)).toEqual([
        'SeatAssigned',
        'SeatReleased',
      ]);
      expect((await requirement(firmId, 'ann')).decision).toBe('off');

      expectOk(await api().post(`/v1/firms/${firmId}/users/ann/reactivate`, host, {}));
      expect((await api().get(`${mfaPath(firmId, 'ann')}/factors`, host)).body).toEqual([]);
      expect((await requirement(firmId, 'ann')).decision).toBe('enroll');
    });

    it('a cancelled subscription turns MFA off but keeps enrollments and seats dormant; re-activation restores them', async () => {
      const firmId = newFirm();
      await activeFirm(api(), firmId, 2);
      await registerUser(api(), firmId, 'ann');
      await enrollTotp(api(), firmId, 'ann', clock.now());
      expectOk(await api().post(`/v1/firms/${firmId}/mfa/subscription/cancel`, operator, {}));
      expect((await requirement(firmId, 'ann')).decision).toBe('off');
      expectOk(
        await api().post(`/v1/firms/${firmId}/mfa/subscription/activate`, operator, {
          licenseCount: 2,
          plan: 'standard',
        }),
      );
      expect(await requirement(firmId, 'ann')).toEqual({ decision: 'verify', methods: ['totp'] });
    });
  });
});
