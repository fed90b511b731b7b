import { RunningService, startService, token } from '../support/harness';

/*
 * What a newcomer's first requests meet: the service's root leads to the API
 * docs, and a bearer token is read as RFC 6750 and RFC 9110 §11.1 write it
 * (the scheme is case-insensitive), so a token that is sent but wrong is
 * called invalid, not missing (the matrix of every route is in
 * authorization.spec.ts).
 */

/** The security headers every answer of the API carries (docs/security.md "Headers"). */
const SECURITY_HEADERS = [
  'content-security-policy',
  'cross-origin-opener-policy',
  'cross-origin-resource-policy',
  'referrer-policy',
  'strict-transport-security',
  'x-content-type-options',
  'x-frame-options',
  'cache-control',
];

const securityHeaders = (headers: Headers) =>
  Object.fromEntries(SECURITY_HEADERS.map((name) => [name, headers.get(name)]));

describe('the first requests of a newcomer', () => {
  let service: RunningService;

  beforeAll(async () => {
    service = await startService();
  });
  afterAll(() => service?.stop());

  /** fetch without following redirects: the answer itself. */
  const raw = (method: string, path: string, headers: Record<string, string> = {}) =>
    fetch(`${service.api.baseUrl}${path}`, { method, headers, redirect: 'manual' });

  it.each(['GET', 'HEAD'])(
    '%s / redirects to the API docs, with the headers of every other answer',
    async (method) => {
      const root = await raw(method, '/');
      expect([302, 303]).toContain(root.status);
      expect(root.headers.get('location')).toBe('/docs');
      // The same security headers as an API answer (a 404 and /health here).
      const reference = securityHeaders((await service.api.get('/health')).headers);
      expect(securityHeaders((await service.api.get('/v1/no/such/route')).headers)).toEqual(
        reference,
      );
      expect(reference['x-content-type-options']).toBe('nosniff');
      expect(securityHeaders(root.headers)).toEqual(reference);
      expect(root.headers.get('x-correlation-id')).toBeTruthy();
      // And the docs are where it leads.
      const docs = await fetch(new URL(root.headers.get('location')!, service.api.baseUrl));
      expect(docs.status).toBe(200);
      expect(docs.headers.get('content-type')).toMatch(/^text\/html/);
    },
  );

  it('only the root redirects: a query keeps it, other unknown paths stay a JSON 404', async () => {
    const withQuery = await raw('GET', '/?from=readme');
    expect([302, 303]).toContain(withQuery.status);
    expect(withQuery.headers.get('location')).toBe('/docs');
    for (const path of ['/index.html', '/v1', '/v1/']) {
      const answer = await raw('GET', path);
      expect(answer.status).toBe(404);
      expect(answer.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    }
    const post = await raw('POST', '/');
    expect(post.status).toBe(404);
  });

  it('a token that is sent but not a token is invalid, not missing; the scheme is case-insensitive', async () => {
    const path = '/v1/firms/acme/mfa/subscription';
    const detail = async (authorization?: string) => {
      const answer = await service.api.request('GET', path, {
        headers: authorization === undefined ? {} : { authorization },
      });
      expect(answer.status).toBe(401);
      expect(answer.body.type).toBe('/problems/unauthorized');
      expect(answer.headers.get('www-authenticate')).toBe('Bearer realm="mfa"');
      return answer.body.detail as string;
    };
    expect(await detail()).toBe('A bearer token is required.');
    expect(await detail('Basic dXNlcjpwYXNz')).toBe('A bearer token is required.');
    expect(await detail('Bearer')).toBe('A bearer token is required.');
    expect(await detail('Bearer garbage')).toBe('The token is not valid.');
    expect(await detail('bearer garbage')).toBe('The token is not valid.');
    expect(await detail('Bearer a.b')).toBe('The token is not valid.');
    expect(await detail(`Bearer ${token('operator').slice(0, -2)}`)).toBe(
      'The token is not valid.',
    );
    // A valid token with the scheme in any case gets through.
    for (const scheme of ['Bearer', 'bearer', 'BEARER']) {
      const answer = await service.api.request('GET', path, {
        headers: { authorization: `${scheme} ${token('operator')}` },
      });
      expect([200, 404]).toContain(answer.status);
    }
  });
});
