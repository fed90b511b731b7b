import jwt from 'jsonwebtoken';
import type { TokenRole } from '../../src/http/auth';
import {
  ApiResponse,
  RunningService,
  startService,
  TEST_JWT_SECRET,
  token,
} from '../support/harness';
import { mailSettled } from '../support/notifications';

/*
 * The authorization matrix of API.md: every endpoint, every way a caller can
 * fail to authenticate (401) or be the wrong caller (403), and the callers who
 * get through. A refused request must leave the log untouched.
 */

const FIRM = 'acme';
const ROLES: readonly TokenRole[] = ['operator', 'superuser', 'host', 'user', 'auditor'];
/** `superuser` and `user` tokens must name a firm; the others are platform-wide unless they do. */
const NEEDS_FIRM: readonly TokenRole[] = ['superuser', 'user'];

interface Endpoint {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  path: string;
  body?: unknown;
  allowed: readonly TokenRole[];
  /** What an allowed caller gets in the table's order (200 unless said). */
  status?: number;
}

/** The user a `user` token speaks for (its sub): the only user it may act on. */
const SELF = 'test-user';
const clientData = (type: string) =>
  Buffer.from(
    JSON.stringify({ type, challenge: 'bm90LWlzc3VlZA', origin: 'http://localhost:3000' }),
  ).toString('base64url');

const firmPath = (firmId: string) => `/v1/firms/${firmId}`;

/**
 * Listed in an order in which every command succeeds when replayed by the
 * allowed roles against a fresh firm (request before activate, mode `specific`
 * before a specific corporation, register before deactivate, cancel last).
 */
const endpoints = (firmId: string): Endpoint[] => {
  const firm = firmPath(firmId);
  return [
    {
      method: 'POST',
      path: `${firm}/mfa/subscription/request`,
      body: { plan: 'standard' },
      allowed: ['superuser'],
    },
    {
      method: 'POST',
      path: `${firm}/mfa/subscription/activate`,
      body: { licenseCount: 5, plan: 'standard' },
      allowed: ['operator'],
    },
    {
      method: 'PUT',
      path: `${firm}/mfa/licenses`,
      body: { licenseCount: 10 },
      allowed: ['operator'],
    },
    { method: 'GET', path: `${firm}/mfa/subscription`, allowed: ['superuser', 'operator'] },
    {
      method: 'PUT',
      path: `${firm}/mfa/enablement/case-managers`,
      body: { enabled: true },
      allowed: ['superuser'],
    },
    {
      method: 'PUT',
      path: `${firm}/mfa/enablement/vendor-case-managers`,
      body: { enabled: true },
      allowed: ['superuser'],
    },
    {
      method: 'PUT',
      path: `${firm}/mfa/enablement/corporations`,
      body: { mode: 'specific' },
      allowed: ['superuser'],
    },
    {
      method: 'PUT',
      path: `${firm}/mfa/enablement/corporations/corp-1`,
      body: { corpUsers: true, foreignNationals: false },
      allowed: ['superuser'],
    },
    { method: 'GET', path: `${firm}/mfa/enablement`, allowed: ['superuser'] },
    {
      method: 'DELETE',
      path: `${firm}/mfa/enablement/corporations/corp-1`,
      allowed: ['superuser'],
    },
    {
      method: 'PUT',
      path: `${firm}/users/u-1`,
      body: { role: 'case-manager', name: 'Ann Lee', email: 'ann@example.com' },
      allowed: ['host'],
    },
    {
      method: 'POST',
      path: `${firm}/users/u-1/deactivate`,
      body: { reason: 'account-disabled' },
      allowed: ['host'],
    },
    { method: 'POST', path: `${firm}/users/u-1/reactivate`, body: {}, allowed: ['host'] },
    {
      method: 'PUT',
      path: `${firm}/corporations/corp-1`,
      body: { name: 'Corp One' },
      allowed: ['host'],
    },
    {
      method: 'PUT',
      path: `${firm}/users/${SELF}`,
      body: { role: 'case-manager', name: 'Sam Self', email: 'sam@example.com' },
      allowed: ['host'],
    },
    {
      method: 'GET',
      path: `${firm}/users/${SELF}/mfa/login-requirement`,
      allowed: ['host', 'user'],
    },
    {
      method: 'POST',
      path: `${firm}/users/${SELF}/mfa/totp/enrollment`,
      body: {},
      allowed: ['user', 'host'],
      status: 201,
    },
    {
      method: 'POST',
      path: `${firm}/users/${SELF}/mfa/totp/enrollment/e-unknown/confirm`,
      body: { code: '123456' },
      allowed: ['user', 'host'],
      status: 404,
    },
    {
      method: 'POST',
      path: `${firm}/users/${SELF}/mfa/webauthn/registration/options`,
      body: {},
      allowed: ['user', 'host'],
    },
    {
      method: 'POST',
      path: `${firm}/users/${SELF}/mfa/webauthn/registration/verify`,
      body: {
        id: 'Y3JlZA',
        rawId: 'Y3JlZA',
        type: 'public-key',
        clientExtensionResults: {},
        response: { clientDataJSON: clientData('webauthn.create'), attestationObject: 'AA' },
      },
      allowed: ['user', 'host'],
      status: 409,
    },
    { method: 'GET', path: `${firm}/users/${SELF}/mfa/factors`, allowed: ['user', 'host'] },
    {
      method: 'POST',
      path: `${firm}/users/${SELF}/mfa/totp/verify`,
      body: { code: '123456' },
      allowed: ['host', 'user'],
      status: 409,
    },
    {
      method: 'POST',
      path: `${firm}/users/${SELF}/mfa/webauthn/authentication/options`,
      body: {},
      allowed: ['host', 'user'],
      status: 409,
    },
    {
      method: 'POST',
      path: `${firm}/users/${SELF}/mfa/webauthn/authentication/verify`,
      body: {
        id: 'Y3JlZA',
        rawId: 'Y3JlZA',
        type: 'public-key',
        clientExtensionResults: {},
        response: {
          clientDataJSON: clientData('webauthn.get'),
          authenticatorData: 'AA',
          signature: 'AA',
        },
      },
      allowed: ['host', 'user'],
      status: 401,
    },
    {
      method: 'POST',
      path: `${firm}/users/${SELF}/mfa/reset`,
      body: { reason: 'Lost phone' },
      allowed: ['superuser'],
    },
    { method: 'GET', path: `${firm}/mfa/notifications/failed`, allowed: ['operator'] },
    {
      method: 'POST',
      path: `${firm}/mfa/notifications/m-unknown/retry`,
      body: {},
      allowed: ['operator'],
      status: 404,
    },
    {
      method: 'POST',
      path: `${firm}/mfa/subscription/cancel`,
      body: {},
      allowed: ['operator'],
    },
  ];
};

const label = (endpoint: Endpoint) => `${endpoint.method} ${endpoint.path}`;

/** A well-formed token for the role, bound to FIRM when the role must name one. */
const tokenFor = (role: TokenRole, options: { firm?: string } = {}) =>
  token(role, {
    firm: options.firm ?? (NEEDS_FIRM.includes(role) ? FIRM : undefined),
    sub: role === 'user' ? SELF : undefined,
  });

const base64url = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

const REQUIRED = /^A bearer token is required\.$/;
const INVALID = /^The token is not valid\.$/;

/** Every way of presenting no valid credentials, each given the endpoint's first allowed role. */
const invalidCredentials: Array<{
  name: string;
  header: (role: TokenRole) => string | undefined;
  /** Where the reason is specific, the answer should say it. */
  detail?: RegExp;
}> = [
  // No bearer token at all: the caller is told to send one (RFC 6750 §3).
  { name: 'no Authorization header', header: () => undefined, detail: REQUIRED },
  { name: 'Basic credentials', header: () => 'Basic x', detail: REQUIRED },
  { name: 'a scheme-less value', header: () => 'garbage', detail: REQUIRED },
  { name: '"Bearer" without a token', header: () => 'Bearer', detail: REQUIRED },
  // A bearer token that is sent but is no valid token: the caller is told it is invalid.
  { name: 'a bearer token that is not a JWT', header: () => 'Bearer garbage', detail: INVALID },
  { name: 'a bearer token with a space', header: () => 'Bearer not a token', detail: INVALID },
  { name: 'a token of two segments', header: () => 'Bearer a.b', detail: INVALID },
  { name: 'three segments that are not a JWT', header: () => 'Bearer a.b.c', detail: INVALID },
  {
    name: 'a token signed with another secret',
    header: (role) =>
      `Bearer ${token(role, { firm: FIRM, secret: 'another-secret-another-secret-0123456789' })}`,
    detail: INVALID,
  },
  {
    name: 'an expired token',
    header: (role) => `Bearer ${token(role, { firm: FIRM, expiresIn: -60 })}`,
    detail: /expire/i,
  },
  {
    name: 'a token without exp',
    header: (role) =>
      `Bearer ${jwt.sign({ role, firm: FIRM, sub: `test-${role}` }, TEST_JWT_SECRET, {
        algorithm: 'HS256',
        noTimestamp: true,
      })}`,
    detail: /exp/i,
  },
  {
    name: 'an alg "none" token',
    header: (role) => {
      const exp = Math.floor(Date.now() / 1000) + 300;
      const claims = { role, firm: FIRM, sub: `test-${role}`, exp };
      return `Bearer ${base64url({ alg: 'none', typ: 'JWT' })}.${base64url(claims)}.`;
    },
    detail: INVALID,
  },
  {
    name: 'a token with an unknown role',
    header: () => `Bearer ${token('admin', { firm: FIRM })}`,
    detail: /role/i,
  },
  {
    name: 'a superuser token without firm',
    header: () => `Bearer ${token('superuser')}`,
    detail: /firm/i,
  },
  { name: 'a user token without firm', header: () => `Bearer ${token('user')}`, detail: /firm/i },
];

function send(service: RunningService, endpoint: Endpoint, authorization?: string) {
  return service.api.request(endpoint.method, endpoint.path, {
    body: endpoint.body,
    headers: authorization === undefined ? {} : { authorization },
  });
}

function expectProblem(response: ApiResponse, status: 401 | 403): void {
  expect(response.status).toBe(status);
  expect(response.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  expect(response.body).toEqual(
    expect.objectContaining({
      type: expect.stringMatching(/^\/problems\//),
      title: expect.any(String),
      status,
      detail: expect.any(String),
    }),
  );
  if (status === 401) {
    expect(response.headers.get('www-authenticate')).toMatch(/^Bearer\b/);
  }
}

describe('authorization: refused callers', () => {
  let service: RunningService;
  beforeAll(async () => {
    // Hundreds of requests without a valid token from one address, and many for one user:
    // the rate limits (test/http/rate-limits.spec.ts) would answer 429 before the guard.
    service = await startService({
      env: { RATE_LIMIT_PER_ADDRESS: 'off', RATE_LIMIT_PER_USER: 'off' },
    });
  });
  afterAll(async () => {
    await service?.stop();
  });

  const unauthenticated = endpoints(FIRM).flatMap((endpoint) =>
    invalidCredentials.map((credential) => ({ endpoint, credential })),
  );
  it.each(unauthenticated.map((c) => [label(c.endpoint), c.credential.name, c] as const))(
    '%s with %s is 401',
    async (_label, _name, { endpoint, credential }) => {
      const response = await send(service, endpoint, credential.header(endpoint.allowed[0]));
      expectProblem(response, 401);
      if (credential.detail) expect(response.body.detail).toMatch(credential.detail);
    },
  );

  const wrongRole = endpoints(FIRM).flatMap((endpoint) =>
    ROLES.filter((role) => !endpoint.allowed.includes(role)).map((role) => ({ endpoint, role })),
  );
  it.each(wrongRole.map((c) => [label(c.endpoint), c.role, c] as const))(
    '%s is 403 for role %s',
    async (_label, _role, { endpoint, role }) => {
      const response = await send(service, endpoint, `Bearer ${tokenFor(role)}`);
      expectProblem(response, 403);
    },
  );

  const otherFirm = endpoints(FIRM).flatMap((endpoint) =>
    endpoint.allowed.map((role) => ({ endpoint, role })),
  );
  it.each(otherFirm.map((c) => [label(c.endpoint), c.role, c] as const))(
    '%s is 403 for a %s token bound to another firm',
    async (_label, _role, { endpoint, role }) => {
      const response = await send(service, endpoint, `Bearer ${tokenFor(role, { firm: 'other' })}`);
      expectProblem(response, 403);
    },
  );

  // Runs last in this describe: every request above was refused.
  it('appends nothing to the log for refused requests', async () => {
    expect(await service.events()).toEqual([]);
  });
});

describe('authorization: allowed callers', () => {
  let service: RunningService;
  beforeAll(async () => {
    // Every role on every route, many for one user: not what the per-user limit is about.
    service = await startService({ env: { RATE_LIMIT_PER_USER: 'off' } });
  });
  afterAll(async () => {
    await service?.stop();
  });

  const allowed = endpoints(FIRM).flatMap((endpoint) =>
    endpoint.allowed.map((role) => ({ endpoint, role })),
  );
  // In table order: each command's preconditions were set up by the rows before it.
  it.each(allowed.map((c) => [label(c.endpoint), c.role, c] as const))(
    '%s gets through for role %s',
    async (_label, _role, { endpoint, role }) => {
      const response = await send(service, endpoint, `Bearer ${tokenFor(role)}`);
      expect(response.status).not.toBe(403);
      // A refused login answers 401 too, but never as the guard's `unauthorized`.
      expect(response.body.type).not.toBe('/problems/unauthorized');
      expect(response.status).toBe(endpoint.status ?? 200);
    },
  );

  it('an operator without a firm claim reaches any firm; one bound to acme does not reach other', async () => {
    const platformOperator = `Bearer ${token('operator')}`;
    for (const firmId of [FIRM, 'other', 'never-seen-firm']) {
      const read = await service.api.request('GET', `${firmPath(firmId)}/mfa/subscription`, {
        headers: { authorization: platformOperator },
      });
      expect(read.status).toBe(200);
    }

    const acmeOperator = `Bearer ${token('operator', { firm: FIRM })}`;
    const ownFirm = await service.api.request('GET', `${firmPath(FIRM)}/mfa/subscription`, {
      headers: { authorization: acmeOperator },
    });
    expect(ownFirm.status).toBe(200);

    // The emails of the set-up go out first: they are not this request's doing.

    await mailSettled(service);

    const before = (await service.events()).length;
    const read = await service.api.request('GET', `${firmPath('other')}/mfa/subscription`, {
      headers: { authorization: acmeOperator },
    });
    expectProblem(read, 403);
    const command = await service.api.request('PUT', `${firmPath('other')}/mfa/licenses`, {
      body: { licenseCount: 3 },
      headers: { authorization: acmeOperator },
    });
    expectProblem(command, 403);
    expect((await service.events()).length).toBe(before);
  });

  const userEndpoints = endpoints(FIRM).filter((endpoint) => endpoint.allowed.includes('user'));
  it.each(userEndpoints.map((endpoint) => [label(endpoint), endpoint] as const))(
    '%s: a user token may act only on its own userId (403 for another user, nothing appended)',
    async (_label, endpoint) => {
      // The emails of the set-up go out first: they are not this request's doing.
      await mailSettled(service);
      const before = (await service.events()).length;
      const otherUser = {
        ...endpoint,
        path: endpoint.path.replace(`/users/${SELF}/`, '/users/u-1/'),
      };
      const response = await send(service, otherUser, `Bearer ${tokenFor('user')}`);
      expectProblem(response, 403);
      expect((await service.events()).length).toBe(before);
    },
  );
});

describe('authorization: public routes', () => {
  let service: RunningService;
  beforeAll(async () => {
    service = await startService();
  });
  afterAll(async () => {
    await service?.stop();
  });

  it('GET /health needs no token, but a token that is sent must be valid', async () => {
    expect((await service.api.get('/health')).status).toBe(200);
    const withJunk = await service.api.request('GET', '/health', {
      headers: { authorization: 'Bearer a.b' },
    });
    expect(withJunk.status).toBe(401);
    expect(withJunk.body.type).toBe('/problems/unauthorized');
    expect(withJunk.body.detail).toMatch(INVALID);
    const garbage = await service.api.request('GET', '/health', {
      headers: { authorization: 'Bearer garbage' },
    });
    expect(garbage.status).toBe(401);
    expect(garbage.body).toMatchObject({
      type: '/problems/unauthorized',
      detail: 'The token is not valid.',
    });
  });

  it.each(['/openapi.json', '/docs'])(
    'GET %s needs no token, and a bad one does not matter',
    async (path) => {
      const anonymous = await service.api.get(path);
      expect(anonymous.status).toBe(200);
      const withJunk = await service.api.request('GET', path, {
        headers: { authorization: 'Bearer a.b' },
      });
      expect(withJunk.status).toBe(200);
    },
  );
});
