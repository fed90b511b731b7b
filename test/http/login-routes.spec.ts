import { ApplicationConfig, ModulesContainer } from '@nestjs/core';
import {
  ApiResponse,
  RequestOptions,
  RunningService,
  startService,
  TestClock,
  token,
} from '../support/harness';
import { activeFirm, enrollTotp, host, mfaPath, oathtool, registerUser } from '../support/mfa';

/*
 * GET login-requirement and POST totp/verify are served outside Nest's
 * per-request pipeline (ADR 0020). Each is sent every kind of bad request
 * beside a Nest route that shares its rules, and must answer exactly as that
 * route does: GET .../mfa/factors (roles host and user, the path's ids,
 * ReadQuery) for the login requirement, POST .../totp/enrollment/{id}/confirm
 * (roles host and user, the path's ids, CodeBody) for the verification.
 */

const FIRM = 'fast-firm';
const USER = 'fast-user';
const clock = new TestClock(new Date('2026-03-02T10:00:00.000Z'));

/** What a caller can see of an answer, the headers every answer must carry included. */
function seen(response: ApiResponse) {
  const header = (name: string) => response.headers.get(name);
  return {
    status: response.status,
    body: response.body,
    contentType: header('content-type'),
    wwwAuthenticate: header('www-authenticate'),
    retryAfter: header('retry-after'),
    cacheControl: header('cache-control'),
    nosniff: header('x-content-type-options'),
    frame: header('x-frame-options'),
    csp: header('content-security-policy'),
    correlation: header('x-correlation-id') !== null,
  };
}

describe('The login routes outside Nest answer bad requests as every other route does', () => {
  let service: RunningService;

  beforeAll(async () => {
    // The per-user limit would turn the many requests for one user into 429s.
    service = await startService({ clock, env: { RATE_LIMIT_PER_USER: 'off' } });
    await activeFirm(service.api, FIRM, 3);
    await registerUser(service.api, FIRM, USER);
  });
  afterAll(() => service.stop());

  it("knows every step of Nest's per-request pipeline it stands in for", () => {
    // A new global guard, interceptor, pipe or filter would not reach the two
    // routes of login.routes.ts on its own (ADR 0020). This list is what they
    // do in its place; when it changes, do the same there, then update it.
    const enhancers: string[] = [];
    for (const module of service.app.get(ModulesContainer).values()) {
      for (const [key, wrapper] of module.providers) {
        const kind =
          typeof key === 'string' ? /^APP_(GUARD|INTERCEPTOR|PIPE|FILTER)\b/.exec(key) : null;
        if (kind) enhancers.push(`${kind[0]} ${String(wrapper.metatype?.name)}`);
      }
    }
    const config = service.app.get(ApplicationConfig);
    enhancers.push(
      ...config.getGlobalPipes().map((pipe) => `global pipe ${pipe.constructor.name}`),
      ...config.getGlobalInterceptors().map((one) => `global interceptor ${one.constructor.name}`),
      ...config.getGlobalFilters().map((filter) => `global filter ${filter.constructor.name}`),
      ...config.getGlobalGuards().map((guard) => `global guard ${guard.constructor.name}`),
    );
    expect(enhancers.sort()).toEqual(
      [
        'APP_GUARD AuthGuard', // authorize()
        'APP_GUARD RateLimitGuard', // countRequest()
        'APP_INTERCEPTOR IdempotencyInterceptor', // GET, and verify ignores the key
        'APP_FILTER ProblemFilter', // answerError()
        'global pipe StrictValidationPipe', // runPipes() for anything not well formed
        'global guard AuthGuard',
        'global guard RateLimitGuard',
        'global interceptor IdempotencyInterceptor',
        'global filter ProblemFilter',
      ].sort(),
    );
  });

  const send = (method: string, path: string, options: RequestOptions) =>
    service.api.request(method, path, options);

  /** Bad paths: [firmId, userId] as they appear in the URL, each refused before any handler. */
  const badIds: Array<[string, string]> = [
    ['a%20b', USER],
    [FIRM, 'semi;colon'],
    ['a%20b', 'c%20d'],
    [FIRM, 'x'.repeat(129)],
    ['bad%2Ffirm', 'bad!user'],
    ['%C3%A9', USER],
  ];

  /** Tokens that must not get through: [what, token]. */
  const badTokens: Array<[string, string | undefined]> = [
    ['no token', undefined],
    ['a malformed token', 'not-a-jwt'],
    [
      'a token signed with another key',
      token('host', { secret: 'another-secret-another-secret-0123456' }),
    ],
    ['an expired token', token('host', { expiresIn: -60 })],
    ['the operator', token('operator')],
    ['an auditor', token('auditor')],
    ['a superuser of the firm', token('superuser', { firm: FIRM })],
    ['a host bound to another firm', token('host', { firm: 'other-firm' })],
    ['a user of another firm', token('user', { firm: 'other-firm', sub: USER })],
    ['another user of the firm', token('user', { firm: FIRM, sub: 'someone-else' })],
  ];

  describe('GET login-requirement beside GET factors', () => {
    const pair = (firmId: string, userId: string) => [
      `${mfaPath(firmId, userId)}/login-requirement`,
      `${mfaPath(firmId, userId)}/factors`,
    ];
    const same = async (
      firmId: string,
      userId: string,
      options: RequestOptions,
      method = 'GET',
    ) => {
      const [fast, twin] = pair(firmId, userId);
      const [a, b] = await Promise.all([send(method, fast, options), send(method, twin, options)]);
      expect(seen(a)).toEqual(seen(b));
      return a;
    };

    it.each(badTokens)('refuses %s as AuthGuard does', async (_what, bearer) => {
      const answer = await same(FIRM, USER, { token: bearer });
      expect([401, 403]).toContain(answer.status);
      expect(answer.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    });

    it.each(badIds)(
      'refuses the ids %s / %s with the field that is wrong',
      async (firmId, userId) => {
        const answer = await same(firmId, userId, { token: host });
        expect(answer.status).toBe(400);
        expect(answer.body.type).toBe('/problems/validation-failed');
        expect(answer.body.errors[0].field).toMatch(/^(firmId|userId)$/);
      },
    );

    it('checks a firm-bound token against the path before the ids, as guards run before pipes', async () => {
      const answer = await same('a%20b', USER, { token: token('host', { firm: FIRM }) });
      expect(answer.status).toBe(403);
    });

    it.each([
      ['an unknown parameter', '?foo=1'],
      ['a minPosition that is not digits', '?minPosition=abc'],
      ['a repeated minPosition', '?minPosition=1&minPosition=2'],
      ['a prototype name', '?toString=1'],
      ['a valid minPosition and an unknown parameter', '?minPosition=5&x=y'],
    ])('refuses %s in the query', async (_what, query) => {
      const [fast, twin] = pair(FIRM, USER);
      const [a, b] = await Promise.all([
        send('GET', fast + query, { token: host }),
        send('GET', twin + query, { token: host }),
      ]);
      expect(seen(a)).toEqual(seen(b));
      expect(a.status).toBe(400);
      expect(a.body.type).toBe('/problems/validation-failed');
    });

    it('answers a valid minPosition, the user itself, HEAD, and an X-Correlation-Id', async () => {
      const self = token('user', { firm: FIRM, sub: USER });
      const [fast] = pair(FIRM, USER);
      for (const options of [
        { token: host },
        { token: self },
        { token: host, headers: { 'x-correlation-id': 'corr-fast-1' } },
      ]) {
        const answer = await send('GET', `${fast}?minPosition=1`, options);
        expect(answer.status).toBe(200);
        expect(answer.body).toMatchObject({ decision: 'enroll' });
        expect(answer.headers.get('cache-control')).toBe('no-store');
      }
      const correlated = await send('GET', fast, {
        token: host,
        headers: { 'x-correlation-id': 'corr-fast-2' },
      });
      expect(correlated.headers.get('x-correlation-id')).toBe('corr-fast-2');
      const head = await same(FIRM, USER, { token: host }, 'HEAD');
      expect(head.status).toBe(200);
    });

    it('answers another method as an unknown route', async () => {
      const answer = await same(FIRM, USER, { token: host, body: {} }, 'PUT');
      expect(answer.status).toBe(404);
    });
  });

  describe('POST totp/verify beside POST totp/enrollment/{id}/confirm', () => {
    const pair = (firmId: string, userId: string) => [
      `${mfaPath(firmId, userId)}/totp/verify`,
      `${mfaPath(firmId, userId)}/totp/enrollment/no-such-enrollment/confirm`,
    ];
    const same = async (firmId: string, userId: string, options: RequestOptions) => {
      const [fast, twin] = pair(firmId, userId);
      const [a, b] = await Promise.all([send('POST', fast, options), send('POST', twin, options)]);
      expect(seen(a)).toEqual(seen(b));
      return a;
    };
    const code = { code: '123456' };

    it.each(badTokens)('refuses %s as AuthGuard does', async (_what, bearer) => {
      const answer = await same(FIRM, USER, { token: bearer, body: code });
      expect([401, 403]).toContain(answer.status);
    });

    it.each(badIds)('refuses the ids %s / %s', async (firmId, userId) => {
      const answer = await same(firmId, userId, { token: host, body: code });
      expect(answer.status).toBe(400);
      expect(answer.body.type).toBe('/problems/validation-failed');
    });

    const badBodies: Array<[string, RequestOptions]> = [
      ['malformed JSON', { rawBody: '{"code": "123' }],
      ['an empty body', { rawBody: '' }],
      ['a blank body', { rawBody: '   ' }],
      ['no content type', { rawBody: '{"code":"123456"}', headers: { 'content-type': '' } }],
      ['text/plain', { rawBody: '{"code":"123456"}', headers: { 'content-type': 'text/plain' } }],
      [
        'a form',
        {
          rawBody: 'code=123456',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
        },
      ],
      ['an array', { body: [code] }],
      ['a number', { rawBody: '123456' }],
      ['a string', { rawBody: '"123456"' }],
      ['null', { rawBody: 'null' }],
      ['no code', { body: {} }],
      ['a numeric code', { body: { code: 123456 } }],
      ['a short code', { body: { code: '12345' } }],
      ['letters', { body: { code: 'abcdef' } }],
      ['a long code', { body: { code: `${'1'.repeat(25)}` } }],
      ['a code padded past 20 characters', { body: { code: `123456${' '.repeat(20)}` } }],
      ['an unknown field', { body: { code: '123456', remember: true } }],
      ['a prototype key', { rawBody: '{"code":"123456","constructor":1}' }],
      ['__proto__', { rawBody: '{"code":"123456","__proto__":{"x":1}}' }],
      ['a lone surrogate', { rawBody: '{"code":"\\ud800"}' }],
      ['deep nesting', { rawBody: `{"code":${'['.repeat(100)}${']'.repeat(100)}}` }],
      ['a body over the limit', { body: { code: '123456', pad: 'x'.repeat(70_000) } }],
    ];

    it.each(badBodies)('refuses %s as the ValidationPipe does', async (_what, options) => {
      const answer = await same(FIRM, USER, { token: host, ...options });
      expect(answer.status).toBeGreaterThanOrEqual(400);
      expect(answer.status).toBeLessThan(500);
      expect(answer.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    });

    it('refuses a bad body before telling whether the user has a factor', async () => {
      // The fast test of a well-formed body must not let a bad one through to the handler.
      const answer = await send('POST', pair(FIRM, USER)[0], {
        token: host,
        body: { code: '123456', x: 1 },
      });
      expect(answer.status).toBe(400);
      const notEnrolled = await send('POST', pair(FIRM, USER)[0], { token: host, body: code });
      expect(notEnrolled.status).toBe(409);
      expect(notEnrolled.body.type).toBe('/problems/factor-not-enrolled');
    });

    it('accepts a code with the spaces a user types, once, and records each answer', async () => {
      const userId = 'spaced';
      await registerUser(service.api, FIRM, userId);
      const { secret } = await enrollTotp(service.api, FIRM, userId, clock.now());
      clock.advance(60_000);
      const now = oathtool(secret, clock.now());
      const typed = ` ${now.slice(0, 3)} ${now.slice(3)} `;
      const path = `${mfaPath(FIRM, userId)}/totp/verify`;
      const accepted = await send('POST', path, { token: host, body: { code: typed } });
      expect(accepted.status).toBe(200);
      expect(accepted.body).toMatchObject({ verified: true });
      const replayed = await send('POST', path, { token: host, body: { code: now } });
      expect(replayed.status).toBe(401);
      expect(replayed.body.type).toBe('/problems/code-already-used');
      const recorded = (await service.events()).filter(
        (event) => event.streamId === `verification-${FIRM}/${userId}`,
      );
      expect(recorded.map((event) => event.type)).toEqual([
        'TotpVerificationSucceeded',
        'TotpVerificationFailed',
      ]);
    });
  });
});
