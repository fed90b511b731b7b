import helmet from '@fastify/helmet';
import type { FastifyInstance } from 'fastify';

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

const cspText = (directives: Record<string, string[]>) =>
  Object.entries(directives)
    .map(([name, values]) => `${name} ${values.join(' ')}`)
    .join('; ');

/**
 * The headers of answers written straight to the socket, where no hook runs
 * (Node's 400/408/431 answers): the same promises as every other answer.
 */
export const RAW_ANSWER_HEADERS: Record<string, string> = {
  'X-Content-Type-Options': 'nosniff',
  'Cache-Control': 'no-store',
  'Content-Security-Policy': cspText(API_CSP),
  'X-Frame-Options': 'DENY',
};

/**
 * Security headers on every answer, through @fastify/helmet (an onRequest
 * hook, so errors, 404s and rate-limit refusals get them too):
 * `X-Content-Type-Options: nosniff`, `X-Frame-Options: DENY`, a CSP that
 * forbids everything (PAGE_CSP on pages), `Referrer-Policy: no-referrer`,
 * HSTS and helmet's other defaults. And `Cache-Control: no-store` on every
 * answer: enrollment starts carry a TOTP secret and its QR code, factors,
 * dashboards and the directory carry personal data, and one rule for all
 * answers cannot forget a new route. Register before any route.
 */
export async function installSecurityHeaders(fastify: FastifyInstance): Promise<void> {
  await fastify.register(helmet, {
    global: true,
    contentSecurityPolicy: { useDefaults: false, directives: API_CSP },
    frameguard: { action: 'deny' },
  });
  fastify.addHook('onSend', async (_request, reply, payload) => {
    if (!reply.hasHeader('cache-control')) reply.header('cache-control', 'no-store');
    return payload;
  });
}

/** For answers sent before any hook ran (Fastify's router errors). */
export function setRawAnswerHeaders(set: (name: string, value: string) => void): void {
  for (const [name, value] of Object.entries(RAW_ANSWER_HEADERS)) set(name, value);
}
