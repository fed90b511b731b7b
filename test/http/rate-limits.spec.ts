import {
  ApiResponse,
  RunningService,
  startService,
  tempDir,
  TestClock,
  token,
} from '../support/harness';
import { activeFirm, enrollTotp, mfaPath, oathtool, registerUser } from '../support/mfa';
import { rmSync } from 'node:fs';

/*
 * Rate limits (API.md "Limits", docs/security.md): 429 with Retry-After and a
 * problem+json body naming the limit. Per target user on the verification and
 * enrollment routes; failed verifications per caller and per firm; per client
 * address only for requests without a valid token — the host application
 * calls from one address for all its users and must not be throttled by it.
 * The counters live where every instance sees them.
 */

function expect429(response: ApiResponse, limit: string, windowSeconds: number): void {
  expect(response.status).toBe(429);
  expect(response.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  expect(response.headers.get('x-content-type-options')).toBe('nosniff');
  const retryAfter = Number(response.headers.get('retry-after'));
  expect(Number.isInteger(retryAfter)).toBe(true);
  expect(retryAfter).toBeGreaterThanOrEqual(1);
  expect(retryAfter).toBeLessThanOrEqual(windowSeconds);
  expect(response.body).toMatchObject({
    type: '/problems/too-many-requests',
    title: 'Too Many Requests',
    status: 429,
    limit,
    retryAfterSeconds: retryAfter,
  });
}

/*
 * The services that verify codes run on this clock, which never moves: a code
 * computed here is checked against the same 30 s step, whenever the test runs
 * (with the wall clock, a step boundary crossed between the two made a
 * confirmation fail now and then).
 */
const clock = new TestClock();

/** A six-digit code that is not the current one (nor its neighbours) for `secret`. */
function wrongCode(secret: string): string {
  const near = [-1, 0, 1].map((steps) => oathtool(secret, clock.now(), steps));
  for (let n = 0; ; n++) {
    const candidate = String(123456 + n * 7919).slice(-6);
    if (!near.includes(candidate)) return candidate;
  }
}

const verify = (
  service: RunningService,
  firmId: string,
  userId: string,
  caller: string,
  code: string,
) => service.api.post(`${mfaPath(firmId, userId)}/totp/verify`, caller, { code });

describe('with the default limits', () => {
  let service: RunningService;
  const host = token('host', { sub: 'host-app' });

  beforeAll(async () => {
    service = await startService();
    await activeFirm(service.api, 'acme', 500);
  });
  afterAll(() => service.stop());

  it('50 enrollment starts in a row for one user meet a 429 from the 31st on', async () => {
    await registerUser(service.api, 'acme', 'starter');
    const statuses: number[] = [];
    let refusal: ApiResponse | undefined;
    for (let i = 0; i < 50; i++) {
      const response = await service.api.post(
        `${mfaPath('acme', 'starter')}/totp/enrollment`,
        host,
        {},
      );
      statuses.push(response.status);
      if (response.status === 429) refusal ??= response;
    }
    expect(statuses.slice(0, 30)).not.toContain(429);
    expect(statuses.slice(30)).toEqual(Array(20).fill(429));
    expect429(refusal!, 'user', 900);
    // Another user of the same firm, by the same caller, is not affected.
    await registerUser(service.api, 'acme', 'neighbour');
    const other = await service.api.post(
      `${mfaPath('acme', 'neighbour')}/totp/enrollment`,
      host,
      {},
    );
    expect(other.status).toBe(201);
  });

  it('a token that may not act on a user does not spend that user’s budget', async () => {
    const intruder = token('user', { firm: 'acme', sub: 'intruder' });
    for (let i = 0; i < 40; i++) {
      const response = await service.api.post(
        `${mfaPath('acme', 'victim')}/webauthn/authentication/options`,
        intruder,
        {},
      );
      expect(response.status).toBe(403);
    }
    const own = await service.api.post(
      `${mfaPath('acme', 'victim')}/webauthn/authentication/options`,
      token('user', { firm: 'acme', sub: 'victim' }),
      {},
    );
    expect(own.status).not.toBe(429);
  });

  it('the host, calling from one address for many users, is not throttled by address', async () => {
    const statuses = new Map<number, number>();
    const count = (status: number) => statuses.set(status, (statuses.get(status) ?? 0) + 1);
    for (let i = 0; i < 300; i++) {
      count(
        (await service.api.get(`${mfaPath('acme', `login-${i}`)}/login-requirement`, host)).status,
      );
    }
    for (let i = 0; i < 60; i++) {
      count(
        (
          await service.api.post(
            `${mfaPath('acme', `login-${i}`)}/webauthn/authentication/options`,
            host,
            {},
          )
        ).status,
      );
    }
    expect(statuses.get(429)).toBeUndefined();
    expect(statuses.get(200)).toBe(300);
  });
});

describe('failed verifications per caller', () => {
  let service: RunningService;
  const secrets = new Map<string, string>();
  const users = Array.from({ length: 12 }, (_, i) => `u${i + 1}`);

  beforeAll(async () => {
    service = await startService({
      clock,
      env: { RATE_LIMIT_FAILURES_PER_CALLER: '4/900', RATE_LIMIT_FAILURES_PER_FIRM: 'off' },
    });
    await activeFirm(service.api, 'acme', 50);
    for (const user of users) {
      await registerUser(service.api, 'acme', user);
      // Confirmed with the code of the step before: the current one is not spent yet.
      secrets.set(
        user,
        (await enrollTotp(service.api, 'acme', user, new Date(clock.now().getTime() - 30_000)))
          .secret,
      );
    }
  });
  afterAll(() => service.stop());

  it('successes do not count; the fifth failure by one caller is a 429, for any user; other callers go on', async () => {
    const callerA = token('host', { sub: 'host-a' });
    for (const user of users.slice(0, 6)) {
      const response = await verify(
        service,
        'acme',
        user,
        callerA,
        oathtool(secrets.get(user)!, clock.now()),
      );
      expect(response.status).toBe(200);
    }
    const failures: ApiResponse[] = [];
    for (const user of users.slice(6)) {
      failures.push(await verify(service, 'acme', user, callerA, wrongCode(secrets.get(user)!)));
    }
    expect(failures.map((response) => response.status)).toEqual([401, 401, 401, 401, 429, 429]);
    expect429(failures[4], 'caller-failures', 900);
    // A good code is refused too while the caller is over its budget: the guess is not even tried.
    const right = await verify(
      service,
      'acme',
      'u12',
      callerA,
      oathtool(secrets.get('u12')!, clock.now()),
    );
    expect429(right, 'caller-failures', 900);

    const callerB = token('host', { sub: 'host-b' });
    expect(
      (await verify(service, 'acme', 'u7', callerB, wrongCode(secrets.get('u7')!))).status,
    ).toBe(401);
  });

  it('a replayed code is refused but is not a failed guess: it spends no budget', async () => {
    const callerD = token('host', { sub: 'host-d' });
    const code = oathtool(secrets.get('u1')!, clock.now());
    // Accepted now, or already spent by the test before (the clock does not move).
    const first = await verify(service, 'acme', 'u1', callerD, code);
    expect(first.status === 200 || first.body.type === '/problems/code-already-used').toBe(true);
    const answers = [];
    for (let i = 0; i < 10; i++) answers.push(await verify(service, 'acme', 'u1', callerD, code));
    // Ten replays with a budget of four failures: every one a 401 replay, none a 429.
    expect(answers.map((answer) => answer.status)).toEqual(Array(10).fill(401));
    for (const answer of answers) expect(answer.body.type).toBe('/problems/code-already-used');
    expect(
      (await verify(service, 'acme', 'u2', callerD, wrongCode(secrets.get('u2')!))).status,
    ).toBe(401);
  });

  it('a burst of concurrent guesses cannot pass the limit before any of them failed', async () => {
    const callerC = token('host', { sub: 'host-c' });
    const answers = await Promise.all(
      users
        .slice(0, 10)
        .map((user) => verify(service, 'acme', user, callerC, wrongCode(secrets.get(user)!))),
    );
    const statuses = answers.map((response) => response.status).sort();
    expect(statuses.filter((status) => status === 401)).toHaveLength(4);
    expect(statuses.filter((status) => status === 429)).toHaveLength(6);
  });
});

describe('failed verifications per firm', () => {
  let service: RunningService;
  const secrets = new Map<string, string>();

  beforeAll(async () => {
    service = await startService({
      clock,
      env: { RATE_LIMIT_FAILURES_PER_FIRM: '4/900', RATE_LIMIT_FAILURES_PER_CALLER: 'off' },
    });
    for (const firmId of ['acme', 'beta']) await activeFirm(service.api, firmId, 10);
    for (const [firmId, userId] of [
      ['acme', 'a1'],
      ['acme', 'a2'],
      ['acme', 'a3'],
      ['beta', 'b1'],
    ]) {
      await registerUser(service.api, firmId, userId);
      secrets.set(userId, (await enrollTotp(service.api, firmId, userId, clock.now())).secret);
    }
  });
  afterAll(() => service.stop());

  it('a guess sprayed over a firm’s users by several callers is slowed; other firms are not', async () => {
    const callers = ['host-a', 'host-b', 'host-c'].map((sub) => token('host', { sub }));
    const sprayed: number[] = [];
    for (let i = 0; i < 7; i++) {
      const user = ['a1', 'a2', 'a3'][i % 3];
      const response = await verify(
        service,
        'acme',
        user,
        callers[i % 3],
        wrongCode(secrets.get(user)!),
      );
      sprayed.push(response.status);
      if (i === 4) expect429(response, 'firm-failures', 900);
    }
    expect(sprayed).toEqual([401, 401, 401, 401, 429, 429, 429]);
    const elsewhere = await verify(
      service,
      'beta',
      'b1',
      callers[0],
      wrongCode(secrets.get('b1')!),
    );
    expect(elsewhere.status).toBe(401);
  });
});

describe('requests without a valid token, per address', () => {
  let service: RunningService;
  const operator = token('operator');

  beforeAll(async () => {
    service = await startService({ env: { RATE_LIMIT_PER_ADDRESS: '10/60' } });
  });
  afterAll(() => service.stop());

  it('are refused with 429 past the limit, whatever the route; /health and valid tokens go on', async () => {
    const anonymous = [
      () => service.api.get('/v1/firms/acme/mfa/subscription'),
      () => service.api.get('/v1/firms/acme/mfa/subscription', 'not.a.token'),
      () =>
        service.api.get('/v1/firms/acme/mfa/subscription', token('operator', { expiresIn: -60 })),
      () =>
        service.api.post('/v1/firms/acme/users/u1/mfa/totp/verify', undefined, { code: '123456' }),
      () => service.api.get('/openapi.json'),
    ];
    const statuses: number[] = [];
    for (let i = 0; i < 10; i++) statuses.push((await anonymous[i % anonymous.length]()).status);
    expect(statuses).not.toContain(429);
    for (const send of anonymous) expect429(await send(), 'address', 60);
    expect429(await service.api.get('/no/such/route'), 'address', 60);
    expect429(await service.api.get('/docs'), 'address', 60);

    expect((await service.api.get('/health')).status).toBe(200);
    expect((await service.api.get('/v1/firms/acme/mfa/subscription', operator)).status).toBe(200);
    // The web pages' fixed files (no token: the page reads its token from the fragment) go
    // on too: a firm's whole staff opens /enroll from one office address on the day MFA is
    // switched on. Their API calls carry the user's token, limited as any other call.
    for (const path of ['/admin', '/enroll', '/ui/app.css', '/ui/common.js', '/ui/admin.js']) {
      expect([path, (await service.api.get(path)).status]).toEqual([path, 200]);
    }
  });
});

describe('the client address behind a reverse proxy', () => {
  const anonymous = (service: RunningService, forwardedFor: string) =>
    service.api.request('GET', '/v1/firms/acme/mfa/subscription', {
      headers: { 'x-forwarded-for': forwardedFor },
    });

  it('is the X-Forwarded-For address only when the proxy is trusted (HTTP_TRUST_PROXY)', async () => {
    const behindProxy = await startService({
      env: { RATE_LIMIT_PER_ADDRESS: '3/60', HTTP_TRUST_PROXY: '127.0.0.1' },
    });
    try {
      for (let i = 0; i < 3; i++)
        expect((await anonymous(behindProxy, '203.0.113.1')).status).toBe(401);
      expect429(await anonymous(behindProxy, '203.0.113.1'), 'address', 60);
      expect((await anonymous(behindProxy, '203.0.113.2')).status).toBe(401);
    } finally {
      await behindProxy.stop();
    }
  });

  it('cannot be chosen by the client when no proxy is trusted', async () => {
    const direct = await startService({ env: { RATE_LIMIT_PER_ADDRESS: '3/60' } });
    try {
      for (let i = 0; i < 3; i++)
        expect((await anonymous(direct, `203.0.113.${i}`)).status).toBe(401);
      expect429(await anonymous(direct, '203.0.113.99'), 'address', 60);
    } finally {
      await direct.stop();
    }
  });
});

describe('two instances on one data folder', () => {
  const dataDir = tempDir();
  let first: RunningService;
  let second: RunningService;
  const host = token('host');

  beforeAll(async () => {
    const env = { RATE_LIMIT_PER_USER: '6/900' };
    first = await startService({ dataDir, env });
    second = await startService({ dataDir, env });
  });
  afterAll(async () => {
    await first.stop();
    await second.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('share one count: the limit holds across them, not once per instance', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 10; i++) {
      const instance = i % 2 === 0 ? first : second;
      const response = await instance.api.post(
        `${mfaPath('acme', 'shared')}/webauthn/authentication/options`,
        host,
        {},
      );
      statuses.push(response.status);
    }
    expect(statuses.slice(0, 6)).not.toContain(429);
    expect(statuses.slice(6)).toEqual([429, 429, 429, 429]);
  });
});
