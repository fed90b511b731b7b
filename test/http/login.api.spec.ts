import { RunningService, startService, TestClock, token } from '../support/harness';
import {
  activeFirm,
  enrollTotp,
  expectOk,
  host,
  mfaPath,
  oathtool,
  registerUser,
  superuserOf,
} from '../support/mfa';

/** DESIGN §4; API.md Login: the login decision and TOTP verification. */
describe('Login over HTTP', () => {
  let service: RunningService;
  const clock = new TestClock(new Date('2026-03-02T10:00:00.000Z'));
  let firmCounter = 0;
  const newFirm = () => `login-${++firmCounter}`;

  // The per-user rate limit is not this file's subject (test/http/rate-limits.spec.ts).
  beforeAll(
    async () => (service = await startService({ clock, env: { RATE_LIMIT_PER_USER: 'off' } })),
  );
  afterAll(() => service.stop());

  const api = () => service.api;
  const requirement = async (firmId: string, userId: string) => {
    const res = await api().get(`${mfaPath(firmId, userId)}/login-requirement`, host);
    expect(res.status).toBe(200);
    return res.body;
  };
  const verify = (firmId: string, userId: string, code: string) =>
    api().post(`${mfaPath(firmId, userId)}/totp/verify`, host, { code });
  const verificationEvents = async (firmId: string, userId: string) =>
    (await service.events()).filter((e) => e.streamId === `verification-${firmId}/${userId}`);

  describe('the login requirement', () => {
    it('is off for an unknown user, an inactive user, a firm without subscription, and a role no switch covers', async () => {
      const firmId = newFirm();
      await registerUser(api(), firmId, 'early');
      expect(await requirement(firmId, 'early')).toMatchObject({ decision: 'off', methods: [] });
      await activeFirm(api(), firmId, 3);
      expect(await requirement(firmId, 'nobody')).toMatchObject({ decision: 'off', methods: [] });
      await registerUser(api(), firmId, 'vic', { role: 'vendor-case-manager' });
      expect(await requirement(firmId, 'vic')).toMatchObject({ decision: 'off' });
      await registerUser(api(), firmId, 'gone');
      expectOk(
        await api().post(`/v1/firms/${firmId}/users/gone/deactivate`, host, { reason: 'deleted' }),
      );
      expect(await requirement(firmId, 'gone')).toMatchObject({ decision: 'off' });
      expect(await requirement(firmId, 'early')).toMatchObject({ decision: 'enroll' });
    });

    it('covers corp users and foreign nationals through the corporation switches, with on-screen instructions', async () => {
      const firmId = newFirm();
      await activeFirm(api(), firmId, 3, {});
      await registerUser(api(), firmId, 'cu', { role: 'corp-user', corporationId: 'corp-a' });
      await registerUser(api(), firmId, 'fn', {
        role: 'foreign-national',
        corporationId: 'corp-b',
      });
      expect((await requirement(firmId, 'cu')).decision).toBe('off');
      const admin = superuserOf(firmId);
      expectOk(
        await api().put(`/v1/firms/${firmId}/mfa/enablement/corporations`, admin, {
          mode: 'specific',
        }),
      );
      expectOk(
        await api().put(`/v1/firms/${firmId}/mfa/enablement/corporations/corp-a`, admin, {
          corpUsers: true,
          foreignNationals: false,
        }),
      );
      const cu = await requirement(firmId, 'cu');
      expect(cu).toMatchObject({ decision: 'enroll', methods: ['totp', 'webauthn'] });
      expect(cu.instructions).toMatch(/authenticator app/);
      expect((await requirement(firmId, 'fn')).decision).toBe('off');
    });

    it('is verify with the methods of the confirmed factors; an enrolled user outside every enabled scope is not enforced', async () => {
      const firmId = newFirm();
      await activeFirm(api(), firmId, 3);
      await registerUser(api(), firmId, 'ann');
      await enrollTotp(api(), firmId, 'ann', clock.now());
      expect(await requirement(firmId, 'ann')).toEqual({ decision: 'verify', methods: ['totp'] });
      expectOk(
        await api().put(`/v1/firms/${firmId}/mfa/enablement/case-managers`, superuserOf(firmId), {
          enabled: false,
        }),
      );
      expect((await requirement(firmId, 'ann')).decision).toBe('off');
      // Dormant, not reset: switching back on enforces the same factor.
      expectOk(
        await api().put(`/v1/firms/${firmId}/mfa/enablement/case-managers`, superuserOf(firmId), {
          enabled: true,
        }),
      );
      expect(await requirement(firmId, 'ann')).toEqual({ decision: 'verify', methods: ['totp'] });
    });

    it('a user token reads its own requirement and nobody else’s', async () => {
      const firmId = newFirm();
      await activeFirm(api(), firmId, 3);
      await registerUser(api(), firmId, 'ann');
      const ann = token('user', { firm: firmId, sub: 'ann' });
      expect((await api().get(`${mfaPath(firmId, 'ann')}/login-requirement`, ann)).status).toBe(
        200,
      );
      expect((await api().get(`${mfaPath(firmId, 'bob')}/login-requirement`, ann)).status).toBe(
        403,
      );
      expect((await api().get(`${mfaPath('other', 'ann')}/login-requirement`, ann)).status).toBe(
        403,
      );
    });
  });

  describe('TOTP verification', () => {
    it('the code that confirmed the enrollment is spent: refused as a replay at login (DESIGN §4)', async () => {
      const firmId = newFirm();
      await activeFirm(api(), firmId, 3);
      await registerUser(api(), firmId, 'ann');
      const { secret } = await enrollTotp(api(), firmId, 'ann', clock.now());
      const sameCode = await verify(firmId, 'ann', oathtool(secret, clock.now()));
      expect(sameCode.status).toBe(401);
      expect(sameCode.body).toMatchObject({ type: '/problems/code-already-used', verified: false });
      // The step before it too: at or before the spent step is a replay.
      const before = await verify(firmId, 'ann', oathtool(secret, clock.now(), -1));
      expect(before.status).toBe(401);
      expect(before.body.type).toBe('/problems/code-already-used');
      // The next step is a new code: accepted.
      const next = await verify(firmId, 'ann', oathtool(secret, clock.now(), 1));
      expect(next.status).toBe(200);
      const events = await verificationEvents(firmId, 'ann');
      expect(events.map((e) => [e.type, e.data.reason])).toEqual([
        ['TotpVerificationFailed', 'replayed-code'],
        ['TotpVerificationFailed', 'replayed-code'],
        ['TotpVerificationSucceeded', undefined],
      ]);
    });

    it('accepts the current step and one either side, once each; a replayed step is refused', async () => {
      const firmId = newFirm();
      await activeFirm(api(), firmId, 3);
      await registerUser(api(), firmId, 'ann');
      // Confirmed with the code of two steps ago, so that the steps around now are unspent.
      const { secret, factorId } = await enrollTotp(
        api(),
        firmId,
        'ann',
        new Date(clock.now().getTime() - 30_000),
      );
      clock.advance(30_000);

      const previous = await verify(firmId, 'ann', oathtool(secret, clock.now(), -1));
      expect(previous.status).toBe(200);
      const current = await verify(firmId, 'ann', oathtool(secret, clock.now()));
      expect(current.status).toBe(200);
      expect(current.body).toMatchObject({ verified: true });

      const replay = await verify(firmId, 'ann', oathtool(secret, clock.now()));
      expect(replay.status).toBe(401);
      expect(replay.body).toMatchObject({
        type: '/problems/code-already-used',
        verified: false,
        attemptsLeft: 5,
      });
      // An older step than the last accepted one is a replay too.
      const older = await verify(firmId, 'ann', oathtool(secret, clock.now(), -1));
      expect(older.status).toBe(401);

      const next = await verify(firmId, 'ann', oathtool(secret, clock.now(), 1));
      expect(next.status).toBe(200);
      const tooFar = await verify(firmId, 'ann', oathtool(secret, clock.now(), 3));
      expect(tooFar.status).toBe(401);
      expect(tooFar.body.type).toBe('/problems/invalid-code');

      const events = await verificationEvents(firmId, 'ann');
      expect(events.map((e) => e.type)).toEqual([
        'TotpVerificationSucceeded',
        'TotpVerificationSucceeded',
        'TotpVerificationFailed',
        'TotpVerificationFailed',
        'TotpVerificationSucceeded',
        'TotpVerificationFailed',
      ]);
      expect(events[0].data).toMatchObject({ factorId });
      // A replay is refused but is not a guess: it does not count toward the lock.
      expect(events[2].data).toMatchObject({ reason: 'replayed-code', consecutiveFailures: 0 });
      expect(events[5].data).toMatchObject({ reason: 'invalid-code', consecutiveFailures: 1 });

      const factors = await api().get(`${mfaPath(firmId, 'ann')}/factors`, host);
      expect(factors.body[0].lastUsedAt).toBe(clock.now().toISOString());
    });

    it('five failures in a row lock TOTP for 15 minutes (423 with Retry-After); the lock lifts by itself', async () => {
      const firmId = newFirm();
      await activeFirm(api(), firmId, 3);
      await registerUser(api(), firmId, 'ann');
      const { secret } = await enrollTotp(api(), firmId, 'ann', clock.now());
      const wrong = oathtool(secret, clock.now(), 5);
      const attemptsLeft: number[] = [];
      for (let i = 0; i < 5; i++) {
        const res = await verify(firmId, 'ann', wrong);
        expect(res.status).toBe(401);
        attemptsLeft.push(res.body.attemptsLeft);
      }
      expect(attemptsLeft).toEqual([4, 3, 2, 1, 0]);

      const before = (await verificationEvents(firmId, 'ann')).length;
      const locked = await verify(firmId, 'ann', oathtool(secret, clock.now()));
      expect(locked.status).toBe(423);
      expect(locked.body.type).toBe('/problems/totp-locked');
      expect(locked.headers.get('retry-after')).toBe(String(15 * 60));
      expect((await verificationEvents(firmId, 'ann')).length).toBe(before);
      const lockEvent = (await verificationEvents(firmId, 'ann')).at(-1);
      expect(lockEvent?.type).toBe('TotpVerificationLocked');
      expect(lockEvent?.data.lockedUntil).toBe(
        new Date(clock.now().getTime() + 15 * 60_000).toISOString(),
      );

      clock.advance(15 * 60_000 - 1000);
      expect((await verify(firmId, 'ann', oathtool(secret, clock.now()))).status).toBe(423);
      clock.advance(1000);
      const after = await verify(firmId, 'ann', oathtool(secret, clock.now()));
      expect(after.status).toBe(200);
    });

    it('a success clears the failure count', async () => {
      const firmId = newFirm();
      await activeFirm(api(), firmId, 3);
      await registerUser(api(), firmId, 'ann');
      const { secret } = await enrollTotp(api(), firmId, 'ann', clock.now());
      clock.advance(30_000);
      for (let i = 0; i < 4; i++) await verify(firmId, 'ann', '000000');
      expect((await verify(firmId, 'ann', oathtool(secret, clock.now()))).status).toBe(200);
      const res = await verify(firmId, 'ann', '000000');
      expect(res.body.attemptsLeft).toBe(4);
    });

    it('a reset lifts the lock; the old secret no longer verifies, a new enrollment does', async () => {
      const firmId = newFirm();
      await activeFirm(api(), firmId, 3);
      await registerUser(api(), firmId, 'ann');
      const old = await enrollTotp(api(), firmId, 'ann', clock.now());
      for (let i = 0; i < 5; i++) await verify(firmId, 'ann', '000000');
      expect((await verify(firmId, 'ann', oathtool(old.secret, clock.now()))).status).toBe(423);
      expectOk(
        await api().post(`${mfaPath(firmId, 'ann')}/reset`, superuserOf(firmId), {
          reason: 'locked out',
        }),
      );
      const fresh = await enrollTotp(api(), firmId, 'ann', clock.now());
      clock.advance(30_000);
      expect((await verify(firmId, 'ann', oathtool(old.secret, clock.now()))).status).toBe(401);
      expect((await verify(firmId, 'ann', oathtool(fresh.secret, clock.now()))).status).toBe(200);
    });

    it('a user without an authenticator app gets 409 factor-not-enrolled; an unknown user 404', async () => {
      const firmId = newFirm();
      await activeFirm(api(), firmId, 3);
      await registerUser(api(), firmId, 'ann');
      const notEnrolled = await verify(firmId, 'ann', '123456');
      expect(notEnrolled.status).toBe(409);
      expect(notEnrolled.body.type).toBe('/problems/factor-not-enrolled');
      expect((await verify(firmId, 'ghost', '123456')).status).toBe(404);
    });

    it('twenty concurrent verifications of one code accept it exactly once; the replays lock nobody out', async () => {
      const firmId = newFirm();
      await activeFirm(api(), firmId, 3);
      await registerUser(api(), firmId, 'ann');
      const { secret } = await enrollTotp(api(), firmId, 'ann', clock.now());
      clock.advance(60_000);
      const code = oathtool(secret, clock.now());
      const answers = await Promise.all(
        Array.from({ length: 20 }, () => verify(firmId, 'ann', code)),
      );
      expect(answers.filter((a) => a.status === 200)).toHaveLength(1);
      const replays = answers.filter((a) => a.status === 401);
      expect(replays).toHaveLength(19);
      for (const replay of replays) expect(replay.body.type).toBe('/problems/code-already-used');
      // A double click or a retry is not a guess: the next real code still works.
      const next = await verify(firmId, 'ann', oathtool(secret, clock.now(), 1));
      expect(next.status).toBe(200);
    });

    it('failures keep counting across locks, which grow, and the twentieth blocks TOTP until a reset (NIST SP 800-63B §5.2.2)', async () => {
      const firmId = newFirm();
      await activeFirm(api(), firmId, 3);
      await registerUser(api(), firmId, 'ann');
      const { secret } = await enrollTotp(api(), firmId, 'ann', clock.now());
      const retryAfters: string[] = [];
      for (let lock = 1; lock <= 4; lock++) {
        for (let i = 0; i < 5; i++) {
          const res = await verify(firmId, 'ann', oathtool(secret, clock.now(), 5));
          expect(res.status).toBe(401);
        }
        const locked = await verify(firmId, 'ann', oathtool(secret, clock.now(), 1));
        expect(locked.status).toBe(423);
        if (lock < 4) {
          expect(locked.body.type).toBe('/problems/totp-locked');
          retryAfters.push(locked.headers.get('retry-after') ?? '');
          clock.advance(Number(locked.headers.get('retry-after')) * 1000);
        } else {
          // Blocked: no waiting lifts it.
          expect(locked.body.type).toBe('/problems/totp-blocked');
          expect(locked.headers.get('retry-after')).toBeNull();
        }
      }
      expect(retryAfters).toEqual([String(15 * 60), String(30 * 60), String(60 * 60)]);
      clock.advance(365 * 24 * 3_600_000);
      const stillBlocked = await verify(firmId, 'ann', oathtool(secret, clock.now()));
      expect(stillBlocked.status).toBe(423);
      expect(stillBlocked.body.type).toBe('/problems/totp-blocked');
      expect((await verificationEvents(firmId, 'ann')).at(-1)).toMatchObject({
        type: 'TotpVerificationBlocked',
        data: { consecutiveFailures: 20 },
      });

      // A firm admin's reset starts over: the user enrolls again and logs in.
      const reset = await api().post(`${mfaPath(firmId, 'ann')}/reset`, superuserOf(firmId), {
        reason: 'Locked out',
      });
      expect(reset.status).toBe(200);
      const again = await enrollTotp(api(), firmId, 'ann', clock.now());
      clock.advance(30_000);
      expect((await verify(firmId, 'ann', oathtool(again.secret, clock.now()))).status).toBe(200);
    });

    it('malformed codes are 400 and record nothing', async () => {
      const firmId = newFirm();
      await activeFirm(api(), firmId, 3);
      await registerUser(api(), firmId, 'ann');
      await enrollTotp(api(), firmId, 'ann', clock.now());
      for (const code of ['', '12345', '1234567', 'abcdef', 123456, null, '12 34 56 78']) {
        const res = await api().post(`${mfaPath(firmId, 'ann')}/totp/verify`, host, { code });
        expect(res.status).toBe(400);
        expect(res.headers.get('content-type')).toMatch(/problem\+json/);
      }
      expect(await verificationEvents(firmId, 'ann')).toEqual([]);
      // Spaces inside a well-formed code are fine.
      expect((await verify(firmId, 'ann', '123 456')).status).toBe(401);
    });
  });

  /*
   * API.md, Commands: the verification endpoints ignore Idempotency-Key. A
   * kept "verified: true" replayed for 24 h would be a login without a code.
   */
  describe('Idempotency-Key on a verification', () => {
    const verifyWithKey = (firmId: string, userId: string, code: string, key: string) =>
      api().post(
        `${mfaPath(firmId, userId)}/totp/verify`,
        host,
        { code },
        {
          'idempotency-key': key,
        },
      );

    it('the same code sent twice under one key: the second is refused as a replay, never a replayed 200', async () => {
      const firmId = newFirm();
      await activeFirm(api(), firmId, 3);
      await registerUser(api(), firmId, 'ann');
      const { secret } = await enrollTotp(api(), firmId, 'ann', clock.now());
      clock.advance(30_000);
      const code = oathtool(secret, clock.now());

      const first = await verifyWithKey(firmId, 'ann', code, 'login-ann-1');
      expect(first.status).toBe(200);
      expect(first.body).toMatchObject({ verified: true });
      const retry = await verifyWithKey(firmId, 'ann', code, 'login-ann-1');
      expect(retry.status).toBe(401);
      expect(retry.headers.get('idempotent-replayed')).toBeNull();
      expect(retry.body).toMatchObject({ type: '/problems/code-already-used', verified: false });

      const events = await verificationEvents(firmId, 'ann');
      expect(events.map((e) => e.type)).toEqual([
        'TotpVerificationSucceeded',
        'TotpVerificationFailed',
      ]);
      expect(events[1].data).toMatchObject({ reason: 'replayed-code' });
      // Each attempt is a command of its own.
      expect(events[0].metadata.commandId).not.toBe(events[1].metadata.commandId);
    });

    it('a wrong code then the right one under one key: the second is verified', async () => {
      const firmId = newFirm();
      await activeFirm(api(), firmId, 3);
      await registerUser(api(), firmId, 'ann');
      const { secret } = await enrollTotp(api(), firmId, 'ann', clock.now());
      clock.advance(30_000);

      const wrong = await verifyWithKey(firmId, 'ann', oathtool(secret, clock.now(), 5), 'k-1');
      expect(wrong.status).toBe(401);
      expect(wrong.body.type).toBe('/problems/invalid-code');
      const right = await verifyWithKey(firmId, 'ann', oathtool(secret, clock.now()), 'k-1');
      expect(right.status).toBe(200);
      expect(right.body).toMatchObject({ verified: true });
      expect((await verificationEvents(firmId, 'ann')).map((e) => e.type)).toEqual([
        'TotpVerificationFailed',
        'TotpVerificationSucceeded',
      ]);
    });
  });
});
