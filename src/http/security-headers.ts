import type { FastifyInstance } from 'fastify';
import helmet, { HelmetOptions } from 'helmet';
import type { IncomingMessage, ServerResponse } from 'node:http';

/**
 * The Content-Security-Policy of every answer that is not a page: a JSON
 * answer has nothing to load, and no page may frame it.
 */
const API_CSP = {
  'default-src': ["'none'"],
  'base-uri': ["'none'"],
  'form-action': ["'none'"],
  'frame-ancestors': ["'none'"],
};

/**
 * The policy of the pages the service serves (the API docs at /docs): scripts,
 * styles, images and requests from this origin only, no inline script or
 * style, and never inside a frame (clickjacking).
 */
export const PAGE_CSP = {
  'default-src': ["'none'"],
  'script-src': ["'self'"],
  'style-src': ["'self'"],
  // Swagger UI's stylesheet draws its icons as data: SVG images.
  'img-src': ["'self'", 'data:'],
  'connect-src': ["'self'"],
  'font-src': ["'self'"],
  'base-uri': ["'none'"],
  'form-action': ["'none'"],
  'frame-ancestors': ["'none'"],
};

/** Route-level helmet options for a page (see PAGE_CSP); give them as the route's `helmet`. */
export const PAGE_HELMET = {
  contentSecurityPolicy: { useDefaults: false, directives: PAGE_CSP },
};

/** Helmet's options for every answer; a route's `helmet` option replaces some (PAGE_HELMET). */
const API_HELMET: HelmetOptions = {
  contentSecurityPolicy: { useDefaults: false, directives: API_CSP },
  frameguard: { action: 'deny' },
};

/**
 * The headers helmet's middleware sets for `options`, computed once: with
 * fixed directives (no nonce) they depend on nothing in the request.
 * @fastify/helmet built the middleware again for every request, parsing the
 * policy each time: a tenth of a login decision's CPU (ADR 0020).
 * @returns [name, value] pairs in helmet's order
 * @throws Error when a CSP directive is computed per request (a function, as
 *   for a nonce) or helmet did not finish synchronously: such headers cannot
 *   be computed once, and silently freezing them would be worse than failing
 *   at start-up.
 */
export function helmetHeaders(options: HelmetOptions): ReadonlyArray<[string, string]> {
  const policy = options.contentSecurityPolicy;
  const directives = typeof policy === 'object' && policy ? (policy.directives ?? {}) : {};
  for (const [name, values] of Object.entries(directives)) {
    const list: unknown[] = Array.isArray(values) ? values : [values];
    if (list.some((value) => typeof value === 'function')) {
      throw new Error(
        `The CSP directive ${name} is computed per request: security headers are computed once (ADR 0020).`,
      );
    }
  }
  const headers: Array<[string, string]> = [];
  const recorder = {
    setHeader: (name: string, value: string | number) => headers.push([name, String(value)]),
    // X-Powered-By: nothing here sets it, so there is nothing to remove.
    removeHeader: () => undefined,
  };
  let finished = false;
  helmet(options)(
    {} as IncomingMessage,
    recorder as unknown as ServerResponse,
    (error?: unknown) => {
      if (error) throw error;
      finished = true;
    },
  );
  if (!finished) throw new Error('helmet did not set its headers synchronously (ADR 0020).');
  return headers;
}

/** The headers every answer that is not a page carries (API_HELMET). */
const EVERY_ANSWER = helmetHeaders(API_HELMET);

/**
 * The headers of answers written before any hook runs (Node's 400/408/431
 * answers written to the socket, Fastify's router errors): the same headers
 * as every other answer, and `Cache-Control: no-store`.
 */
export const RAW_ANSWER_HEADERS: Readonly<Record<string, string>> = {
  ...Object.fromEntries(EVERY_ANSWER),
  'Cache-Control': 'no-store',
};

/** Where a route keeps the headers computed for its `helmet` option (see installSecurityHeaders). */
const ROUTE_HEADERS = 'securityHeaders';

/**
 * Security headers on every answer, from helmet (an onRequest hook, so
 * errors, 404s and rate-limit refusals get them too):
 * `X-Content-Type-Options: nosniff`, `X-Frame-Options: DENY`, a CSP that
 * forbids everything (PAGE_CSP on pages: a route's `helmet` option is merged
 * over the API's, as @fastify/helmet did), `Referrer-Policy: no-referrer`,
 * HSTS and helmet's other defaults. And `Cache-Control: no-store` on every
 * answer: enrollment starts carry a TOTP secret and its QR code, factors,
 * dashboards and the directory carry personal data, and one rule for all
 * answers cannot forget a new route. Register before any route.
 */
export function installSecurityHeaders(fastify: FastifyInstance): Promise<void> {
  fastify.addHook('onRoute', (route) => {
    const own = (route as { helmet?: HelmetOptions }).helmet;
    if (own) {
      route.config = {
        ...(route.config as object),
        [ROUTE_HEADERS]: helmetHeaders(Object.assign({}, API_HELMET, own) as HelmetOptions),
      } as typeof route.config;
    }
  });
  fastify.addHook('onRequest', (request, reply, done) => {
    const config = request.routeOptions.config as unknown as Record<string, unknown> | undefined;
    const headers =
      (config?.[ROUTE_HEADERS] as ReadonlyArray<[string, string]> | undefined) ?? EVERY_ANSWER;
    for (const [name, value] of headers) reply.raw.setHeader(name, value);
    done();
  });
  fastify.addHook('onSend', async (_request, reply, payload) => {
    if (!reply.hasHeader('cache-control')) reply.header('cache-control', 'no-store');
    return payload;
  });
  return Promise.resolve();
}

/** For answers sent before any hook ran (Fastify's router errors). */
export function setRawAnswerHeaders(set: (name: string, value: string) => void): void {
  for (const [name, value] of Object.entries(RAW_ANSWER_HEADERS)) set(name, value);
}
