import type { FastifyInstance } from 'fastify';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { ADDRESS_LIMIT_EXEMPT } from './rate-limits';
import { PAGE_HELMET } from './security-headers';

/** One file a page loads: its URL path, its media type and where its bytes come from. */
export interface PageFile {
  /** The exact URL path, e.g. `/admin` or `/ui/app.css`. */
  path: string;
  /** The Content-Type, with its charset for text. */
  type: string;
  /** The bytes, read once on first request and kept. */
  read: () => Buffer | string;
}

/** A page file read from disk on first request. */
export const fileOnDisk = (path: string, type: string, file: string): PageFile => ({
  path,
  type,
  read: () => readFileSync(file),
});

export const HTML = 'text/html; charset=utf-8';
export const CSS = 'text/css; charset=utf-8';
export const JAVASCRIPT = 'text/javascript; charset=utf-8';
export const SVG = 'image/svg+xml';

/**
 * Serves each file at its fixed path (GET and HEAD), under the pages'
 * Content-Security-Policy (PAGE_CSP: this origin only, nothing inline, never
 * framed). A fixed list, never a folder: nothing else on disk can be reached.
 *
 * Files carry a strong ETag (SHA-256 of the bytes) and `Cache-Control:
 * no-cache`: a browser keeps them but asks each time, and gets a bodiless 304
 * while they are unchanged, so a new release is never hidden behind a stale
 * copy. Pages hold no data (they read it from the API with the user's token),
 * so caching them reveals nothing.
 *
 * `addressLimitExempt`: the files do not count against the limit on requests
 * without a token per client address (they carry none, are fixed bytes kept
 * in memory, and a whole office may load them from one address at once).
 */
export function servePageFiles(
  fastify: FastifyInstance,
  files: readonly PageFile[],
  options: { addressLimitExempt?: boolean } = {},
): void {
  for (const file of files) {
    let cached: { body: Buffer | string; etag: string } | undefined;
    const load = () => {
      if (!cached) {
        const body = file.read();
        const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`;
        cached = { body, etag };
      }
      return cached;
    };
    fastify.route({
      method: 'GET',
      url: file.path,
      // installSecurityHeaders reads a route's `helmet` option: the page policy instead of the API's.
      ...({ helmet: PAGE_HELMET } as object),
      config: { [ADDRESS_LIMIT_EXEMPT]: options.addressLimitExempt === true },
      handler: (request, reply) => {
        const { body, etag } = load();
        reply.header('cache-control', 'no-cache').header('etag', etag);
        if (request.headers['if-none-match'] === etag) return reply.code(304).send();
        return reply.type(file.type).send(body);
      },
    });
  }
}
