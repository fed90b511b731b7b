import { Logger } from '@nestjs/common';
import type { FastifyServerOptions } from 'fastify';
import type { Server } from 'node:http';
import type { Socket } from 'node:net';
import type { HttpLimits } from '../config/config';
import { Problem, problem, PROBLEM_CONTENT_TYPE } from './problem';
import { RAW_ANSWER_HEADERS } from './security-headers';

const logger = new Logger('HTTP');

/**
 * The HTTP server's own limits as Fastify options (docs/security.md):
 *
 * - `http.headersTimeout`: the header block must arrive within it, or 408.
 * - `requestTimeout`: the whole request (headers and body) must arrive within
 *   it, or 408. Node checks both only every `connectionsCheckingInterval`
 *   (30 s by default) and Fastify's default `requestTimeout` of 0 switches the
 *   check off: a client that sent headers and then a trickle (or nothing) of
 *   its body held its connection for ever. The interval is a quarter of the
 *   request timeout, at most 1 s, so a stalled request is cut off within the
 *   timeout plus that.
 * - `keepAliveTimeout`: an idle kept-alive connection is closed after it.
 * - `connectionTimeout`: a socket with no traffic at all for twice the request
 *   timeout is destroyed; the backstop for a client that stops reading an
 *   answer.
 *
 * `maxConnections` is set on the server itself (applyConnectionCap).
 */
export function httpServerOptions(limits: HttpLimits): FastifyServerOptions {
  const checkEveryMs = Math.max(100, Math.min(1000, Math.floor(limits.requestTimeoutMs / 4)));
  return {
    requestTimeout: limits.requestTimeoutMs,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    connectionTimeout: limits.requestTimeoutMs * 2,
    http: {
      headersTimeout: limits.headersTimeoutMs,
      requestTimeout: limits.requestTimeoutMs,
      connectionsCheckingInterval: checkEveryMs,
    },
    clientErrorHandler: answerClientError,
    ...(limits.trustedProxies.length > 0 ? { trustProxy: limits.trustedProxies } : {}),
  } as FastifyServerOptions;
}

/**
 * At most `maxConnections` sockets at once: Node closes a connection accepted
 * beyond that at once, so a crowd of clients cannot exhaust the process's file
 * descriptors and memory; the timeouts above make each slot free up again.
 */
export function applyConnectionCap(server: Server, limits: HttpLimits): void {
  server.maxConnections = limits.maxConnections;
}

/**
 * Errors Node's HTTP parser or its timers raise before any route runs: a
 * request that is not HTTP (400), a header block over 16 KiB (431), a request
 * not received in time (408). Fastify's default answers them with its own
 * JSON; here they are problem+json like every other error, with the headers
 * every answer carries, and the connection is closed. Logged at debug level
 * without a stack: they are the client's doing, and an attacker can make them
 * by the thousand.
 */
function answerClientError(error: Error & { code?: string }, socket: Socket): void {
  // A reset connection has nobody left to answer.
  if (error.code === 'ECONNRESET' || socket.destroyed) return;
  const body = clientErrorProblem(error.code);
  logger.debug(`Client error ${body.status} (${error.code ?? error.message})`);
  // As Node itself does: answer only when nothing of a response was written yet.
  const inFlight = (socket as Socket & { _httpMessage?: { headersSent?: boolean } | null })
    ._httpMessage;
  if (socket.writable && !inFlight?.headersSent) {
    const payload = JSON.stringify(body);
    const headers = {
      'Content-Type': `${PROBLEM_CONTENT_TYPE}; charset=utf-8`,
      'Content-Length': String(Buffer.byteLength(payload)),
      Connection: 'close',
      ...RAW_ANSWER_HEADERS,
    };
    socket.write(
      `HTTP/1.1 ${body.status} ${body.title}\r\n` +
        Object.entries(headers)
          .map(([name, value]) => `${name}: ${value}\r\n`)
          .join('') +
        `\r\n${payload}`,
    );
  }
  socket.destroy();
}

function clientErrorProblem(code: string | undefined): Problem {
  switch (code) {
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return problem(408, 'request-timeout', 'The request was not received in time.');
    case 'HPE_HEADER_OVERFLOW':
      return problem(
        431,
        'headers-too-large',
        'The request line and headers are larger than the service accepts (16 KiB).',
      );
    default:
      return problem(400, 'bad-request', 'The request could not be read as HTTP/1.1.');
  }
}
