import { ApiResponse, RunningService, startService, token } from '../support/harness';
import { mailSettled } from '../support/notifications';

/*
 * Bad input of every kind is a 4xx problem+json that names what was wrong,
 * never a 500 or a leaked stack, and it appends nothing: a refused command
 * leaves no trace in the log.
 */

const FIRM = 'acme';
const firm = `/v1/firms/${FIRM}`;
const superuser = token('superuser', { firm: FIRM });
const operator = token('operator');
const host = token('host');

interface BadRequest {
  name: string;
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  path: string;
  token: string;
  /** JSON-encoded as the body. */
  body?: unknown;
  /** Sent as is (with content-type application/json unless headers say otherwise). */
  rawBody?: string;
  headers?: Record<string, string>;
  /** The exact status, or undefined where only "some 4xx" is promised. */
  status?: number;
  /** The problem type code, when it is known. */
  type?: string;
  /** Field errors the answer must name. */
  fields?: string[];
}

const validUser = { role: 'case-manager', name: 'Ann Lee', email: 'ann@example.com' };
const licenses = (body: unknown): Omit<BadRequest, 'name'> => ({
  method: 'PUT',
  path: `${firm}/mfa/licenses`,
  token: operator,
  body,
  status: 400,
});
const user = (body: unknown, userId = 'u-2'): Omit<BadRequest, 'name'> => ({
  method: 'PUT',
  path: `${firm}/users/${userId}`,
  token: host,
  body,
  status: 400,
});
const rawLicenses = (rawBody: string, headers?: Record<string, string>) => ({
  method: 'PUT' as const,
  path: `${firm}/mfa/licenses`,
  token: operator,
  rawBody,
  headers,
});

const malformedJson: BadRequest[] = [
  { name: 'malformed JSON {bad', ...rawLicenses('{bad'), status: 400, type: 'malformed-json' },
  {
    name: 'truncated JSON {"a":',
    ...rawLicenses('{"a":'),
    status: 400,
    type: 'malformed-json',
  },
  { name: 'an empty body declared as JSON', ...rawLicenses(''), status: 400 },
  {
    name: 'an empty body declared as JSON on a command without input',
    method: 'POST',
    path: `${firm}/mfa/subscription/cancel`,
    token: operator,
    rawBody: '',
    status: 400,
  },
];

// A command without input (cancel) must refuse these too: there is no field
// validation to catch them, and a pass would cancel the subscription.
const notAnObject: BadRequest[] = ['5', '"x"', '[]', 'null', 'true'].flatMap((json) => [
  { name: `the JSON body ${json}`, ...rawLicenses(json), status: 400, fields: ['body'] },
  {
    name: `the JSON body ${json} on a command without input`,
    method: 'POST' as const,
    path: `${firm}/mfa/subscription/cancel`,
    token: operator,
    rawBody: json,
    status: 400,
    fields: ['body'],
  },
]);

const wrongTypes: BadRequest[] = [
  ...['"5"', '2.5', '-1', '0', '1e9'].map((value) => ({
    name: `licenseCount ${value}`,
    ...rawLicenses(`{"licenseCount":${value}}`),
    status: 400,
    type: 'validation-failed',
    fields: ['licenseCount'],
  })),
  {
    name: 'activate with licenseCount "5"',
    method: 'POST',
    path: `${firm}/mfa/subscription/activate`,
    token: operator,
    body: { licenseCount: '5', plan: 'standard' },
    status: 400,
    fields: ['licenseCount'],
  },
  {
    name: 'activate without a plan',
    method: 'POST',
    path: `${firm}/mfa/subscription/activate`,
    token: operator,
    body: { licenseCount: 5 },
    status: 400,
    fields: ['plan'],
  },
  {
    name: 'force "true"',
    ...licenses({ licenseCount: 7, force: 'true' }),
    fields: ['force'],
  },
  ...['case-managers', 'vendor-case-managers'].map((group) => ({
    name: `enabled "true" for ${group}`,
    method: 'PUT' as const,
    path: `${firm}/mfa/enablement/${group}`,
    token: superuser,
    body: { enabled: 'true' },
    status: 400,
    fields: ['enabled'],
  })),
  {
    name: 'an unknown corporation mode',
    method: 'PUT',
    path: `${firm}/mfa/enablement/corporations`,
    token: superuser,
    body: { mode: 'some' },
    status: 400,
    fields: ['mode'],
  },
  {
    name: 'a specific corporation with corpUsers "yes"',
    method: 'PUT',
    path: `${firm}/mfa/enablement/corporations/corp-1`,
    token: superuser,
    body: { corpUsers: 'yes', foreignNationals: false },
    status: 400,
    fields: ['corpUsers'],
  },
  { name: 'an unknown user role', ...user({ ...validUser, role: 'admin' }), fields: ['role'] },
  {
    name: 'an email that is not an email',
    ...user({ ...validUser, email: 'not-an-email' }),
    fields: ['email'],
  },
  { name: 'a blank name', ...user({ ...validUser, name: '   ' }), fields: ['name'] },
  {
    name: 'a name with a NUL character',
    ...user({ ...validUser, name: 'Ann\u0000Lee' }),
    fields: ['name'],
  },
  {
    name: 'a name that is a single control character',
    ...user({ ...validUser, name: '\u0007' }),
    fields: ['name'],
  },
  {
    name: 'an organization with a NUL character',
    ...user({ ...validUser, organization: 'Acme\u0000Legal' }),
    fields: ['organization'],
  },
  {
    name: 'a name of 201 characters',
    ...user({ ...validUser, name: 'a'.repeat(201) }),
    fields: ['name'],
  },
  { name: 'a name that is a number', ...user({ ...validUser, name: 42 }), fields: ['name'] },
  ...[
    ['a blank corporation name', '   '],
    ['a corporation name with a NUL character', 'Corp\u0000One'],
    ['a corporation name of 201 characters', 'c'.repeat(201)],
  ].map(([name, value]) => ({
    name,
    method: 'PUT' as const,
    path: `${firm}/corporations/corp-1`,
    token: host,
    body: { name: value },
    status: 400,
    fields: ['name'],
  })),
];

const unknownFields: BadRequest[] = [
  {
    name: 'unknown fields plan and admin',
    ...licenses({ licenseCount: 5, plan: 'p', admin: true }),
    type: 'validation-failed',
    fields: ['plan', 'admin'],
  },
  {
    name: 'an unknown field on a command without input',
    method: 'POST',
    path: `${firm}/users/u-1/reactivate`,
    token: host,
    body: { force: true },
    status: 400,
    fields: ['force'],
  },
];

// Fastify refuses these in its JSON parser (before any code of ours sees the
// object), with a 400 whose wording is not about JSON syntax: any 400 will do.
const prototypePollution: BadRequest[] = [
  '{"__proto__":{"x":1}}',
  '{"licenseCount":7,"__proto__":{"x":1}}',
  '{"constructor":{"prototype":{}}}',
  '{"licenseCount":7,"constructor":{"prototype":{"x":1}}}',
].flatMap((json) => [
  { name: `the pollution attempt ${json}`, ...rawLicenses(json), status: 400 },
  {
    name: `the pollution attempt ${json} on a command without input`,
    method: 'POST' as const,
    path: `${firm}/mfa/subscription/cancel`,
    token: operator,
    rawBody: json,
    status: 400,
  },
]);

const oversized = JSON.stringify({ licenseCount: 7, padding: 'x'.repeat(70 * 1024) });
const wrongMedia: BadRequest[] = [
  {
    name: 'a body over 64 KiB',
    ...rawLicenses(oversized),
    status: 413,
    type: 'body-too-large',
  },
  {
    name: 'a body over 64 KiB on a command without input',
    method: 'POST',
    path: `${firm}/mfa/subscription/cancel`,
    token: operator,
    rawBody: oversized,
    status: 413,
  },
  {
    name: 'a text/plain body',
    ...rawLicenses('{"licenseCount":7}', { 'content-type': 'text/plain' }),
    status: 415,
    type: 'unsupported-media-type',
  },
  {
    name: 'a text/plain body on a command without input',
    method: 'POST',
    path: `${firm}/mfa/subscription/cancel`,
    token: operator,
    rawBody: '{}',
    headers: { 'content-type': 'text/plain' },
    status: 415,
  },
  {
    name: 'a form-encoded body',
    ...rawLicenses('licenseCount=7', { 'content-type': 'application/x-www-form-urlencoded' }),
    status: 415,
    type: 'unsupported-media-type',
  },
  {
    name: 'an empty form-encoded body on a command without input',
    method: 'POST',
    path: `${firm}/mfa/subscription/cancel`,
    token: operator,
    rawBody: '',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    status: 415,
  },
];

/*
 * Hostile ids in the path. The router matches a segment whatever it holds
 * (`%2F` is not a separator, and percent-decoding happens after matching), so
 * every one of them reaches the route and its IdPipe: a 400 naming the
 * parameter, never a 404, and never an id that slips into a stream name. Ids
 * longer than the router's maxParamLength (512) never reach the pipe: app.ts
 * answers those from Fastify's router with a 400 on field `path`, so the
 * 600-character id accepts either name.
 */
const hostileIds: Array<[string, string]> = [
  ['a path traversal', '..%2F..%2Fetc'],
  ['a NUL byte', 'a%00b'],
  ['an emoji', '%F0%9F%98%80'],
  ['a space', encodeURIComponent('a b')],
  ['129 characters', 'a'.repeat(129)],
  ['600 characters', 'a'.repeat(600)],
  ['an SQL injection', encodeURIComponent("'; DROP TABLE events;--")],
];
const hostilePaths: BadRequest[] = hostileIds.flatMap(([what, id]) => {
  const parameter = (name: string) => (id.length > 512 ? [name, 'path'] : [name]);
  return [
    {
      name: `firmId with ${what} on a read`,
      method: 'GET' as const,
      path: `/v1/firms/${id}/mfa/subscription`,
      token: operator,
      status: 400,
      fields: parameter('firmId'),
    },
    {
      name: `firmId with ${what} on a command`,
      ...licenses({ licenseCount: 7 }),
      path: `/v1/firms/${id}/mfa/licenses`,
      fields: parameter('firmId'),
    },
    {
      name: `userId with ${what}`,
      ...user(validUser, id),
      fields: parameter('userId'),
    },
    {
      name: `userId with ${what} on deactivate`,
      method: 'POST' as const,
      path: `${firm}/users/${id}/deactivate`,
      token: host,
      body: { reason: 'deleted' },
      status: 400,
      fields: parameter('userId'),
    },
    {
      name: `corporationId with ${what}`,
      method: 'PUT' as const,
      path: `${firm}/corporations/${id}`,
      token: host,
      body: { name: 'Corp One' },
      status: 400,
      fields: parameter('corporationId'),
    },
    {
      name: `messageId with ${what} on an email retry`,
      method: 'POST' as const,
      path: `${firm}/mfa/notifications/${id}/retry`,
      token: operator,
      body: {},
      status: 400,
      fields: parameter('messageId'),
    },
    {
      name: `corporationId with ${what} in enablement`,
      method: 'DELETE' as const,
      path: `${firm}/mfa/enablement/corporations/${id}`,
      token: superuser,
      status: 400,
      fields: parameter('corporationId'),
    },
  ];
});

const rules: BadRequest[] = [
  {
    name: 'a page size of 0 on the failed emails',
    method: 'GET',
    path: `${firm}/mfa/notifications/failed?limit=0`,
    token: operator,
    status: 400,
    fields: ['limit'],
  },
  {
    name: 'a forged cursor on the failed emails',
    method: 'GET',
    path: `${firm}/mfa/notifications/failed?cursor=${Buffer.from('["x","a/b"]').toString('base64url')}`,
    token: operator,
    status: 400,
    fields: ['cursor'],
  },
  {
    name: 'an unknown field on an email retry',
    method: 'POST',
    path: `${firm}/mfa/notifications/m-1/retry`,
    token: operator,
    body: { email: 'new@example.com' },
    status: 400,
    fields: ['email'],
  },
  {
    name: 'minPosition=abc on the subscription',
    method: 'GET',
    path: `${firm}/mfa/subscription?minPosition=abc`,
    token: operator,
    status: 400,
    fields: ['minPosition'],
  },
  {
    name: 'minPosition=-1 on the enablement',
    method: 'GET',
    path: `${firm}/mfa/enablement?minPosition=-1`,
    token: superuser,
    status: 400,
    fields: ['minPosition'],
  },
  {
    name: 'an unknown query parameter on a read',
    method: 'GET',
    path: `${firm}/mfa/subscription?admin=true`,
    token: operator,
    status: 400,
    fields: ['admin'],
  },
  {
    name: 'corporationId on a case manager',
    ...user({ ...validUser, corporationId: 'corp-1' }),
    fields: ['corporationId'],
  },
  {
    name: 'no corporationId on a corp user',
    ...user({ ...validUser, role: 'corp-user' }),
    fields: ['corporationId'],
  },
  {
    name: 'a malformed corporationId on a corp user',
    ...user({ ...validUser, role: 'corp-user', corporationId: 'corp/1' }),
    fields: ['corporationId'],
  },
  {
    name: 'mode "specific" with corpUsers',
    method: 'PUT',
    path: `${firm}/mfa/enablement/corporations`,
    token: superuser,
    body: { mode: 'specific', corpUsers: true },
    status: 400,
    fields: ['corpUsers'],
  },
  {
    name: 'an unknown deactivation reason',
    method: 'POST',
    path: `${firm}/users/u-1/deactivate`,
    token: host,
    body: { reason: 'fired' },
    status: 400,
    fields: ['reason'],
  },
  {
    name: 'deactivation without a reason',
    method: 'POST',
    path: `${firm}/users/u-1/deactivate`,
    token: host,
    body: {},
    status: 400,
    fields: ['reason'],
  },
];

// Each carries a command that would succeed (and append) with a good key.
const badIdempotencyKeys: BadRequest[] = [
  ['an empty Idempotency-Key', ''],
  ['an Idempotency-Key with a space', 'key 1'],
  ['a non-ASCII Idempotency-Key', 'cl\u00e9-1'],
  ['an Idempotency-Key of 256 characters', 'k'.repeat(256)],
].map(([name, key]) => ({
  name,
  ...licenses({ licenseCount: 7 }),
  headers: { 'idempotency-key': key },
  type: 'invalid-idempotency-key',
}));

/** Enrollment and login bodies: a malformed one is refused before any secret or seat is touched. */
const mfa = `${firm}/users/u-1/mfa`;
const clientDataJSON = Buffer.from(
  JSON.stringify({ type: 'webauthn.create', challenge: 'abc', origin: 'http://localhost:3000' }),
).toString('base64url');
const registration = {
  id: 'Y3JlZA',
  rawId: 'Y3JlZA',
  type: 'public-key',
  clientExtensionResults: {},
  response: { clientDataJSON, attestationObject: 'AA' },
};
const assertion = {
  ...registration,
  response: { clientDataJSON, authenticatorData: 'AA', signature: 'AA' },
};
const enrollmentInput: BadRequest[] = [
  ...[5, '', ' ', 'x'.repeat(101), 'bell\u0007', ['a']].map((label) => ({
    name: `a TOTP enrollment labelled ${JSON.stringify(label)}`,
    method: 'POST' as const,
    path: `${mfa}/totp/enrollment`,
    token: host,
    body: { label },
    status: 400,
    fields: ['label'],
  })),
  ...[undefined, 123456, '', '12345', '1234567', 'abcdef', '12-34-56', ' '].map((code) => ({
    name: `a confirmation with the code ${JSON.stringify(code)}`,
    method: 'POST' as const,
    path: `${mfa}/totp/enrollment/e-1/confirm`,
    token: host,
    body: code === undefined ? {} : { code },
    status: 400,
    fields: ['code'],
  })),
  ...[undefined, 123456, 'abcdef', '1234567'].map((code) => ({
    name: `a login with the code ${JSON.stringify(code)}`,
    method: 'POST' as const,
    path: `${mfa}/totp/verify`,
    token: host,
    body: code === undefined ? {} : { code },
    status: 400,
    fields: ['code'],
  })),
  {
    name: 'a confirmation with an extra field',
    method: 'POST',
    path: `${mfa}/totp/enrollment/e-1/confirm`,
    token: host,
    body: { code: '123456', secret: 'JBSWY3DPEHPK3PXP' },
    status: 400,
    fields: ['secret'],
  },
  {
    name: 'an enrollment id that is not an id',
    method: 'POST',
    path: `${mfa}/totp/enrollment/${encodeURIComponent('e 1')}/confirm`,
    token: host,
    body: { code: '123456' },
    status: 400,
    fields: ['enrollmentId'],
  },
  ...(
    [
      ['without response', { ...registration, response: undefined }, ['response']],
      ['whose response is a string', { ...registration, response: 'x' }, ['response']],
      ['of another type', { ...registration, type: 'password' }, ['type']],
      [
        'with clientDataJSON not base64url',
        { ...registration, response: { ...registration.response, clientDataJSON: '{"a":1}' } },
        ['response.clientDataJSON'],
      ],
      [
        'with clientDataJSON that is not JSON',
        { ...registration, response: { ...registration.response, clientDataJSON: 'bm90IGpzb24' } },
        ['response.clientDataJSON'],
      ],
      [
        'without attestationObject',
        { ...registration, response: { clientDataJSON } },
        ['response.attestationObject'],
      ],
      [
        'with an unknown transport',
        { ...registration, response: { ...registration.response, transports: ['pigeon'] } },
        ['response.transports'],
      ],
      ['with an extra field', { ...registration, password: 'x' }, ['password']],
    ] as const
  ).map(([what, body, fields]) => ({
    name: `a security-key registration ${what}`,
    method: 'POST' as const,
    path: `${mfa}/webauthn/registration/verify`,
    token: host,
    body,
    status: 400,
    fields: [...fields],
  })),
  ...(
    [
      [
        'without signature',
        { ...assertion, response: { clientDataJSON, authenticatorData: 'AA' } },
        ['response.signature'],
      ],
      ['with a non-base64url id', { ...assertion, id: 'not base64!' }, ['id']],
      [
        'whose clientDataJSON has no challenge',
        {
          ...assertion,
          response: {
            ...assertion.response,
            clientDataJSON: Buffer.from('{}').toString('base64url'),
          },
        },
        ['response.clientDataJSON'],
      ],
    ] as const
  ).map(([what, body, fields]) => ({
    name: `a security-key login ${what}`,
    method: 'POST' as const,
    path: `${mfa}/webauthn/authentication/verify`,
    token: host,
    body,
    status: 400,
    fields: [...fields],
  })),
  ...[undefined, '', 42, 'x'.repeat(501)].map((reason) => ({
    name: `a reset with the reason ${JSON.stringify(reason)?.slice(0, 20)}`,
    method: 'POST' as const,
    path: `${mfa}/reset`,
    token: superuser,
    body: reason === undefined ? {} : { reason },
    status: 400,
    fields: ['reason'],
  })),
  {
    name: 'an authentication-options body with a field',
    method: 'POST',
    path: `${mfa}/webauthn/authentication/options`,
    token: host,
    body: { userVerification: 'required' },
    status: 400,
    fields: ['userVerification'],
  },
];

const cases: BadRequest[] = [
  ...enrollmentInput,
  ...malformedJson,
  ...notAnObject,
  ...wrongTypes,
  ...unknownFields,
  ...prototypePollution,
  ...wrongMedia,
  ...hostilePaths,
  ...rules,
  ...badIdempotencyKeys,
];

function send(service: RunningService, request: BadRequest): Promise<ApiResponse> {
  return service.api.request(request.method, request.path, {
    token: request.token,
    body: request.body,
    rawBody: request.rawBody,
    headers: request.headers,
  });
}

describe('bad input', () => {
  let service: RunningService;
  let eventsAfterSetUp: number;

  // An active subscription and a registered user: no rule refuses any of the
  // requests below (enablement, deactivation), so only validation can.
  beforeAll(async () => {
    // Dozens of bad requests for one user: the per-user limit (test/http/rate-limits.spec.ts)
    // would answer 429 before validation is reached.
    service = await startService({ env: { RATE_LIMIT_PER_USER: 'off' } });
    const ok = async (response: Promise<ApiResponse>) => {
      const answer = await response;
      expect(answer.status).toBe(200);
    };
    await ok(service.api.post(`${firm}/mfa/subscription/request`, superuser, { plan: 'standard' }));
    await ok(
      service.api.post(`${firm}/mfa/subscription/activate`, operator, {
        licenseCount: 5,
        plan: 'standard',
      }),
    );
    await ok(service.api.put(`${firm}/users/u-1`, host, validUser));
    await mailSettled(service);
    eventsAfterSetUp = (await service.events()).length;
    expect(eventsAfterSetUp).toBeGreaterThan(0);
  });
  afterAll(async () => {
    await service?.stop();
  });

  it.each(cases.map((c) => [c.name, c] as const))('%s', async (_name, request) => {
    const response = await send(service, request);

    expect(response.status).toBeGreaterThanOrEqual(400);
    expect(response.status).toBeLessThan(500);
    if (request.status !== undefined) expect(response.status).toBe(request.status);
    expect(response.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(response.body).toEqual(
      expect.objectContaining({
        type: expect.stringMatching(/^\/problems\/[a-z0-9-]+$/),
        title: expect.any(String),
        status: response.status,
        detail: expect.any(String),
      }),
    );
    if (request.type !== undefined) expect(response.body.type).toBe(`/problems/${request.type}`);
    const { fields } = request;
    if (fields !== undefined) {
      const errors = response.body.errors as unknown;
      expect(Array.isArray(errors)).toBe(true);
      for (const error of errors as unknown[]) {
        expect(error).toEqual({ field: expect.any(String), message: expect.any(String) });
      }
      const named = (errors as Array<{ field: string }>).map((error) => error.field);
      if (fields.includes('path')) {
        // Either name will do: see the hostile ids above.
        expect(named.some((field) => fields.includes(field))).toBe(true);
      } else {
        expect(named).toEqual(expect.arrayContaining(fields));
      }
    }
    expect(response.text).not.toMatch(/at .*\.(ts|js):\d+/);
    expect(response.text).not.toContain('Error:');
  });

  it('left the prototype of every object alone', () => {
    expect(({} as Record<string, unknown>).x).toBeUndefined();
    expect(Object.prototype).not.toHaveProperty('x');
  });

  it('appended nothing beyond the set-up', async () => {
    const appended = (await service.events()).slice(eventsAfterSetUp);
    expect(appended.map((event) => `${event.streamId}: ${event.type}`)).toEqual([]);
    const subscription = await service.api.get(`${firm}/mfa/subscription`, operator);
    expect(subscription.body).toEqual({ status: 'active', plan: 'standard', licenseCount: 5 });
  });
});
