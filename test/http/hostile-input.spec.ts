import { ApiResponse, RunningService, startService, token } from '../support/harness';
import { mailSettled } from '../support/notifications';
import { portOf, rawRequest, RawResponse } from '../support/raw-http';

/*
 * Input shaped to hurt the service rather than to mean something
 * (docs/security.md "Bad input"): JSON nested thousands deep, keys named like
 * Object.prototype members, ids that are URL dot segments, bytes that are not
 * UTF-8. Each is a 400 problem+json before it reaches a rule, and nothing is
 * appended.
 */

const FIRM = 'acme';
const firm = `/v1/firms/${FIRM}`;
const operator = token('operator');
const host = token('host');
const superuser = token('superuser', { firm: FIRM });
const validUser = { role: 'case-manager', name: 'Ann Lee', email: 'ann@example.com' };

const nestedArrays = (depth: number) => '['.repeat(depth) + ']'.repeat(depth);
const nestedObjects = (depth: number) => '{"a":'.repeat(depth) + '1' + '}'.repeat(depth);

/** Every name an object inherits from Object.prototype. */
const PROTOTYPE_NAMES = Object.getOwnPropertyNames(Object.prototype);

function expectProblem(
  response: { status: number; text: string; headers: Headers },
  status: number,
) {
  expect(response.status).toBe(status);
  expect(response.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  expect(response.text).not.toMatch(/\n\s+at |Error:/);
  return JSON.parse(response.text) as { type: string; errors?: Array<{ field: string }> };
}

function expectRawProblem(response: RawResponse, status: number) {
  expect(response.status).toBe(status);
  expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
  return JSON.parse(response.body) as { type: string; errors?: Array<{ field: string }> };
}

describe('hostile input', () => {
  let service: RunningService;
  let eventsAfterSetUp: number;

  beforeAll(async () => {
    service = await startService();
    const ok = async (response: Promise<ApiResponse>) => expect((await response).status).toBe(200);
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
  });
  afterAll(() => service?.stop());

  describe('deeply nested JSON is refused at parsing, 400 json-too-deep', () => {
    const routes: Array<[string, string, string]> = [
      ['PUT', `${firm}/users/u-1`, host],
      ['POST', `${firm}/users/u-1/mfa/totp/enrollment`, host],
      ['POST', `${firm}/users/u-1/mfa/webauthn/registration/verify`, host],
      ['POST', `${firm}/users/u-1/mfa/webauthn/authentication/verify`, host],
      ['POST', `${firm}/mfa/subscription/cancel`, operator],
    ];
    const bodies: Array<[string, string]> = [
      ['5,000 nested arrays', nestedArrays(5000)],
      ['5,000 nested arrays in a field', `{"label":${nestedArrays(5000)}}`],
      ['10,000 nested objects in a field', `{"response":${nestedObjects(10_000)}}`],
      ['33 levels, one past the bound', `{"name":${nestedArrays(32)}}`],
    ];
    it.each(
      routes.flatMap(([method, path, caller]) =>
        bodies.map(([name, body]) => [name, method, path, caller, body]),
      ),
    )('%s, %s %s', async (_name, method, path, caller, body) => {
      const withKey: Record<string, string> = { 'idempotency-key': `deep-${Math.random()}` };
      for (const headers of [{}, withKey]) {
        const response = await service.api.request(method, path, {
          token: caller,
          rawBody: body,
          headers,
        });
        expect(expectProblem(response, 400).type).toBe('/problems/json-too-deep');
      }
    });

    it('32 levels pass the parser and meet validation', async () => {
      const response = await service.api.request('PUT', `${firm}/users/u-1`, {
        token: host,
        rawBody: JSON.stringify({ ...validUser, name: JSON.parse(nestedArrays(31)) }),
      });
      expect(expectProblem(response, 400).type).toBe('/problems/validation-failed');
    });
  });

  describe('keys named like Object.prototype members are unknown fields, 400 validation-failed', () => {
    it.each(PROTOTYPE_NAMES)('%s in a registration', async (name) => {
      const response = await service.api.request('PUT', `${firm}/users/u-1`, {
        token: host,
        rawBody: `{"role":"case-manager","name":"Ann Lee","email":"ann@example.com",${JSON.stringify(name)}:1}`,
      });
      const problem = expectProblem(response, 400);
      expect(problem.type).toBe('/problems/validation-failed');
      expect(problem.errors).toEqual(
        expect.arrayContaining([expect.objectContaining({ field: name })]),
      );
    });

    it.each(PROTOTYPE_NAMES)('%s in a command that takes no input', async (name) => {
      const response = await service.api.request('POST', `${firm}/mfa/subscription/cancel`, {
        token: operator,
        rawBody: `{${JSON.stringify(name)}:{}}`,
      });
      const problem = expectProblem(response, 400);
      expect(problem.errors).toEqual(
        expect.arrayContaining([expect.objectContaining({ field: name })]),
      );
    });

    it.each(PROTOTYPE_NAMES)('%s inside a nested object', async (name) => {
      const response = await service.api.request(
        'POST',
        `${firm}/users/u-1/mfa/webauthn/authentication/verify`,
        {
          token: host,
          rawBody: `{"id":"a","rawId":"a","type":"public-key","clientExtensionResults":{},"response":{${JSON.stringify(name)}:"x"}}`,
        },
      );
      const problem = expectProblem(response, 400);
      expect(problem.errors).toEqual(
        expect.arrayContaining([expect.objectContaining({ field: `response.${name}` })]),
      );
    });

    it.each(PROTOTYPE_NAMES)('%s as a query parameter', async (name) => {
      const response = await service.api.get(
        `${firm}/mfa/subscription?${encodeURIComponent(name)}=1`,
        operator,
      );
      const problem = expectProblem(response, 400);
      expect(problem.errors).toEqual(
        expect.arrayContaining([expect.objectContaining({ field: name })]),
      );
    });
  });

  describe('unknown fields whose names are not identifiers, 400 validation-failed naming them', () => {
    // Found by the fuzzer: a name that is not a valid regular expression made a 500.
    const names = ['( ', '[', '*', 'a b', '\\', '$^', '(?<x>', ')', '+?', '{1}', '.*', ''];
    it.each(names)('%j', async (name) => {
      for (const [path, caller] of [
        [`${firm}/users/u-1/mfa/webauthn/authentication/options`, host],
        [`${firm}/mfa/subscription/cancel`, operator],
      ]) {
        const response = await service.api.post(path, caller, { [name]: '' });
        const problem = expectProblem(response, 400);
        expect(problem.type).toBe('/problems/validation-failed');
        expect(problem.errors).toEqual([{ field: name, message: 'should not exist' }]);
      }
    });
  });

  describe('ids that are URL dot segments are refused, 400 validation-failed', () => {
    // fetch() would remove these segments before sending: they go over a bare socket.
    const dots = ['.', '..', '%2e', '%2e%2e', '%2E%2E', '.%2e', '%2e.'];
    const send = (method: string, path: string, caller: string, body?: unknown) =>
      rawRequest(
        portOf(service),
        `${method} ${path} HTTP/1.1`,
        {
          Authorization: `Bearer ${caller}`,
          ...(body ? { 'Content-Type': 'application/json' } : {}),
        },
        body ? JSON.stringify(body) : '',
      );

    it.each(dots)('firm id %s', async (id) => {
      const problem = expectRawProblem(
        await send('PUT', `/v1/firms/${id}/users/u-9`, host, validUser),
        400,
      );
      expect(problem.errors).toEqual([expect.objectContaining({ field: 'firmId' })]);
    });

    it.each(dots)('user id %s', async (id) => {
      const problem = expectRawProblem(
        await send('PUT', `${firm}/users/${id}`, host, validUser),
        400,
      );
      expect(problem.errors).toEqual([expect.objectContaining({ field: 'userId' })]);
    });

    it.each(dots)('corporation id %s', async (id) => {
      const problem = expectRawProblem(
        await send('PUT', `${firm}/corporations/${id}`, host, { name: 'Dot Corp' }),
        400,
      );
      expect(problem.errors).toEqual([expect.objectContaining({ field: 'corporationId' })]);
    });

    it.each(['.', '..'])('corporationId %s in a body', async (id) => {
      const response = await service.api.put(`${firm}/users/u-8`, host, {
        role: 'corp-user',
        corporationId: id,
        name: 'Cy Dot',
        email: 'cy@example.com',
      });
      expect(expectProblem(response, 400).errors).toEqual([
        expect.objectContaining({ field: 'corporationId' }),
      ]);
    });

    it('an id of three dots, which is no dot segment, is still an id', async () => {
      const response = await send('PUT', `${firm}/corporations/...`, host, { name: 'Three Dots' });
      expect(response.status).toBe(200);
      eventsAfterSetUp += 1;
    });
  });

  describe('bodies that are not UTF-8 JSON, 400 malformed-json', () => {
    const rawBodies: Array<[string, Buffer]> = [
      [
        'an invalid UTF-8 byte in a string',
        Buffer.concat([Buffer.from('{"name":"Ann'), Buffer.from([0xff]), Buffer.from('"}')]),
      ],
      [
        'a lone continuation byte',
        Buffer.concat([Buffer.from('{"reason":"'), Buffer.from([0x80]), Buffer.from('"}')]),
      ],
      [
        'an overlong encoding of "/"',
        Buffer.concat([Buffer.from('{"reason":"'), Buffer.from([0xc0, 0xaf]), Buffer.from('"}')]),
      ],
      ['a NUL byte outside strings', Buffer.from('{"reason":"x"}\u0000')],
    ];
    it.each(rawBodies)('%s', async (_name, body) => {
      const response = await rawRequest(
        portOf(service),
        `POST ${firm}/users/u-1/deactivate HTTP/1.1`,
        { Authorization: `Bearer ${host}`, 'Content-Type': 'application/json' },
        body,
      );
      expect(expectRawProblem(response, 400).type).toBe('/problems/malformed-json');
    });
  });

  it('appended nothing beyond the set-up', async () => {
    const appended = (await service.events()).slice(eventsAfterSetUp);
    expect(appended.map((event) => `${event.streamId}: ${event.type}`)).toEqual([]);
  });
});
