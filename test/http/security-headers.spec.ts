import { connect } from 'node:net';
import { helmetHeaders } from '../../src/http/security-headers';
import { ApiResponse, RunningService, startService, token } from '../support/harness';

/*
 * Security headers (docs/security.md "Headers"): every answer says nosniff and
 * is never stored by a cache (enrollment starts carry a TOTP secret, most
 * answers personal data), and may not be framed. The /docs page has a strict
 * Content-Security-Policy and serves only the files it needs.
 */

interface Operation {
  method: string;
  path: string;
  roles: string[];
}

const sampleIds: Record<string, string> = {
  firmId: 'acme',
  userId: 'u1',
  corporationId: 'corp-1',
  enrollmentId: 'e1',
};

function callerFor(roles: string[]): string | undefined {
  const role = roles[0];
  if (!role) return undefined;
  return role === 'user' || role === 'superuser'
    ? token(role, { firm: 'acme', sub: 'u1' })
    : token(role, { sub: 'u1' });
}

/**
 * `cache`: `no-store` for every answer of the API; the pages' static files
 * say `no-cache` instead (kept, but revalidated by their ETag every time).
 */
function expectEveryAnswerHeaders(response: ApiResponse, cache = 'no-store'): void {
  expect(response.headers.get('x-content-type-options')).toBe('nosniff');
  expect(response.headers.get('cache-control')).toBe(cache);
  expect(response.headers.get('content-security-policy')).toMatch(/frame-ancestors 'none'/);
  expect(response.headers.get('x-frame-options')).toBe('DENY');
}

describe('security headers', () => {
  let service: RunningService;
  let operations: Operation[];

  beforeAll(async () => {
    service = await startService();
    const document = (await service.api.get('/openapi.json')).body as {
      paths: Record<string, Record<string, { 'x-roles'?: string[] }>>;
    };
    operations = Object.entries(document.paths).flatMap(([path, item]) =>
      Object.entries(item)
        .filter(([method]) => ['get', 'put', 'post', 'delete'].includes(method))
        .map(([method, operation]) => ({
          method: method.toUpperCase(),
          path: path.replace(/\{(\w+)\}/g, (_m, name: string) => sampleIds[name] ?? 'x1'),
          roles: operation['x-roles'] ?? [],
        })),
    );
  });
  afterAll(() => service.stop());

  it('the OpenAPI description lists the routes sampled below', () => {
    expect(operations.length).toBeGreaterThan(25);
  });

  it('are on an answer of every route of the OpenAPI description: allowed, refused and unauthenticated', async () => {
    for (const operation of operations) {
      const body = operation.method === 'GET' ? undefined : {};
      const answers = [
        await service.api.request(operation.method, operation.path, {
          token: callerFor(operation.roles),
          body,
        }),
        await service.api.request(operation.method, operation.path, {
          token: token('auditor', { sub: 'someone' }),
          body,
        }),
        await service.api.request(operation.method, operation.path, { body }),
      ];
      for (const answer of answers) {
        try {
          expectEveryAnswerHeaders(answer);
        } catch (error) {
          throw new Error(
            `${operation.method} ${operation.path} (${answer.status}): ${String(error)}`,
          );
        }
      }
    }
  });

  it('are on the OpenAPI description, a 404, a 401 and /health', async () => {
    for (const answer of [
      await service.api.get('/openapi.json'),
      await service.api.get('/openapi.yaml'),
      await service.api.get('/v1/no/such/route', token('operator')),
      await service.api.get('/v1/firms/acme/mfa/subscription'),
      await service.api.get('/health'),
    ]) {
      expectEveryAnswerHeaders(answer);
    }
  });

  it('are the same on answers written before any hook runs: a router error and a raw 400', async () => {
    const securityHeaders = (headers: Iterable<[string, string]>) =>
      Object.fromEntries(
        [...headers]
          .map(([name, value]) => [name.toLowerCase(), value] as [string, string])
          .filter(
            ([name]) =>
              !/^(date|connection|keep-alive|content-(type|length)|x-correlation-id)$/.test(name),
          ),
      );
    const routed = securityHeaders((await service.api.get('/v1/no/such/route')).headers);
    expect(routed).toHaveProperty('strict-transport-security');
    expect(routed).toHaveProperty('referrer-policy');
    // Fastify's router refuses an id over 512 characters before any hook.
    const tooLong = await service.api.get(
      `/v1/firms/acme/users/${'x'.repeat(600)}/mfa/factors`,
      token('host', { firm: 'acme' }),
    );
    expect(tooLong.status).toBe(400);
    expect(securityHeaders(tooLong.headers)).toEqual(routed);
    // Node's parser refuses a request that is not HTTP; the answer is written to the socket.
    const raw = await new Promise<string>((resolve, reject) => {
      const socket = connect(
        (service.app.getHttpServer().address() as { port: number }).port,
        '127.0.0.1',
        () => socket.write('NOT HTTP\r\n\r\n'),
      );
      let text = '';
      socket.on('data', (chunk) => (text += chunk.toString('latin1')));
      socket.on('end', () => resolve(text));
      socket.on('error', reject);
    });
    expect(raw).toMatch(/^HTTP\/1\.1 400 /);
    const rawHeaders = raw
      .split('\r\n\r\n')[0]
      .split('\r\n')
      .slice(1)
      .map((line) => {
        const colon = line.indexOf(':');
        return [line.slice(0, colon), line.slice(colon + 1).trim()] as [string, string];
      });
    expect(securityHeaders(rawHeaders)).toEqual(routed);
  });

  it.each([
    ['/docs', '/docs/'],
    ['/admin', '/admin/', '/enroll', '/enroll/'],
  ])(
    '%s has a strict Content-Security-Policy: own origin only, nothing inline, no frames',
    async (...paths) => {
      for (const path of paths) {
        const page = await service.api.get(path);
        expect(page.status).toBe(200);
        expect(page.headers.get('content-type')).toMatch(/^text\/html/);
        expectEveryAnswerHeaders(page, 'no-cache');
        const csp = page.headers.get('content-security-policy')!;
        const directives = Object.fromEntries(
          csp.split(';').map((directive) => {
            const [name, ...values] = directive.trim().split(/\s+/);
            return [name, values];
          }),
        );
        expect(directives['default-src']).toEqual(["'none'"]);
        expect(directives['script-src']).toEqual(["'self'"]);
        expect(directives['style-src']).toEqual(["'self'"]);
        expect(directives['frame-ancestors']).toEqual(["'none'"]);
        expect(csp).not.toMatch(/unsafe-inline|unsafe-eval|\*/);
        // The page itself holds no inline script or style that the policy would block.
        expect(page.text).not.toMatch(/<script>|<style|style="/);
      }
    },
  );

  it('/docs serves the files its page needs and nothing else of swagger-ui’s folder', async () => {
    for (const file of ['swagger-ui.css', 'swagger-ui-bundle.js', 'docs.css', 'docs.js']) {
      const answer = await service.api.get(`/docs/${file}`);
      expect(answer.status).toBe(200);
      expect(answer.headers.get('content-type')).toMatch(
        file.endsWith('.js') ? /javascript/ : /text\/css/,
      );
      expectEveryAnswerHeaders(answer, 'no-cache');
    }
    for (const file of [
      'package.json',
      'swagger-ui-bundle.js.map',
      'swagger-ui.css.map',
      'swagger-ui.js',
      'index.html',
      'swagger-initializer.js',
      'LICENSE',
      'README.md',
      'absolute-path.js',
      '../package.json',
      '%2e%2e/package.json',
    ]) {
      const answer = await service.api.get(`/docs/${file}`);
      expect(answer.status).toBe(404);
      expect(answer.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    }
  });

  it('the web pages serve a fixed list of files, each revalidated by its ETag', async () => {
    const files: Array<[string, RegExp]> = [
      ['/ui/app.css', /^text\/css/],
      ['/ui/common.js', /^text\/javascript/],
      ['/ui/admin.js', /^text\/javascript/],
      ['/ui/enroll.js', /^text\/javascript/],
      ['/ui/icon.svg', /^image\/svg\+xml/],
      ['/ui/vendor/chart.umd.min.js', /^text\/javascript/],
      ['/ui/vendor/simplewebauthn-browser.js', /^text\/javascript/],
    ];
    for (const [path, type] of files) {
      const answer = await service.api.get(path);
      expect(answer.status).toBe(200);
      expect(answer.headers.get('content-type')).toMatch(type);
      expectEveryAnswerHeaders(answer, 'no-cache');
      const etag = answer.headers.get('etag')!;
      expect(etag).toMatch(/^"[\w-]{27}"$/);
      const again = await service.api.request('GET', path, { headers: { 'if-none-match': etag } });
      expect(again.status).toBe(304);
      expect(again.text).toBe('');
      const changed = await service.api.request('GET', path, {
        headers: { 'if-none-match': '"something-else"' },
      });
      expect(changed.status).toBe(200);
    }
    for (const path of [
      '/ui/',
      '/ui/admin.html',
      '/ui/tsconfig.json',
      '/ui/../package.json',
      '/ui/%2e%2e/package.json',
      '/ui/vendor/chart.umd.js',
      '/ui/vendor/',
      '/admin/admin.js',
      '/web/public/admin.js',
    ]) {
      const answer = await service.api.get(path);
      expect(answer.status).toBe(404);
      expect(answer.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    }
  });
});

describe('security headers computed once', () => {
  it('refuse a policy computed per request (a nonce): it would be frozen at start-up', () => {
    expect(() =>
      helmetHeaders({
        contentSecurityPolicy: {
          useDefaults: false,
          directives: { 'default-src': ["'none'"], 'script-src': [() => "'nonce-1'"] },
        },
      }),
    ).toThrow(/computed per request/);
  });
});
