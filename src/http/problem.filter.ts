import { ArgumentsHost, Catch, ExceptionFilter, HttpException, Logger } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { DomainError } from '../shared/domain-error';
import { StoredResponse } from './idempotency';
import {
  Problem,
  PROBLEM_CONTENT_TYPE,
  ProblemException,
  problem,
  problemFromDomainError,
} from './problem';

/**
 * The one place where errors become answers. Everything leaves as
 * problem+json; an unexpected error is logged (stack at error level only) and
 * answered with a generic 500 that reveals nothing.
 */
@Catch()
export class ProblemFilter implements ExceptionFilter {
  private readonly logger = new Logger('HTTP');

  catch(exception: unknown, host: ArgumentsHost): void {
    const http = host.switchToHttp();
    const reply = http.getResponse<FastifyReply>();
    const request = http.getRequest<FastifyRequest>();
    if (exception instanceof StoredResponse) {
      const { status, contentType, body } = exception.record;
      reply
        .status(status)
        .header('content-type', contentType)
        .header('idempotent-replayed', 'true');
      reply.send(body);
      return;
    }
    answerError(exception, request, reply, this.logger);
  }
}

/**
 * Answers an error as problem+json (toProblem), for ProblemFilter and for the
 * login routes served outside Nest (ADR 0020): nothing when the client is
 * already gone, the stack of an unexpected error at error level only, and a
 * replayed code marked as not a guess for the failure limits.
 */
export function answerError(
  exception: unknown,
  request: FastifyRequest,
  reply: FastifyReply,
  logger: Pick<Logger, 'debug' | 'error'>,
): void {
  if (clientWentAway(exception, request)) {
    // Nobody is left to answer (the client hung up, or was cut off for being too slow), and
    // neither is a fault of the service: one line at debug level, no stack (a crowd of
    // aborting clients must not flood the log).
    logger.debug(
      `${request.method} ${request.routeOptions?.url ?? '?'}: the connection closed before the request was read (${describe(exception)})`,
    );
    return;
  }
  const { body, headers } = toProblem(exception, (error) =>
    logger.error(
      `${request.method} ${request.routeOptions?.url ?? '?'} failed: ${describe(error)}`,
      error instanceof Error ? error.stack : undefined,
    ),
  );
  // The right code sent again (a double click, a retry) is refused, but it is not a guess:
  // the rate limits of failed verifications leave it out, as the TOTP lock does (DESIGN §4).
  if (body.type === '/problems/code-already-used') {
    (request as FastifyRequest & { notAGuess?: boolean }).notAGuess = true;
  }
  sendProblem(reply, body, headers);
}

export function sendProblem(
  reply: FastifyReply,
  body: Problem,
  headers: Record<string, string> = {},
): void {
  for (const [name, value] of Object.entries(headers)) reply.header(name, value);
  reply.status(body.status).header('content-type', PROBLEM_CONTENT_TYPE).send(body);
}

export function toProblem(
  exception: unknown,
  onUnexpected: (error: unknown) => void,
): { body: Problem; headers: Record<string, string> } {
  if (exception instanceof ProblemException) {
    return { body: exception.problem, headers: exception.headers };
  }
  if (exception instanceof DomainError) {
    return { body: problemFromDomainError(exception), headers: retryAfter(exception) };
  }
  if (exception instanceof HttpException) {
    // Nest's own (unknown route) and Fastify's (body parsing, limits, media
    // type) errors arrive here. Their messages can echo internals, so each
    // status gets a fixed code and sentence.
    return { body: httpProblem(exception.getStatus(), exception.message), headers: {} };
  }
  onUnexpected(exception);
  return {
    body: problem(500, 'internal-error', 'The service could not complete the request.'),
    headers: {},
  };
}

function httpProblem(status: number, message: string): Problem {
  switch (status) {
    case 400:
      return /json/i.test(message)
        ? problem(400, 'malformed-json', 'The body is not valid JSON.')
        : problem(400, 'bad-request', 'The request could not be read.');
    case 401:
      return problem(401, 'unauthorized', 'Authentication is required.');
    case 403:
      return problem(403, 'forbidden', 'This caller may not do that.');
    case 404:
      return problem(404, 'not-found', 'No such resource.');
    case 405:
      return problem(405, 'method-not-allowed', 'This method is not allowed here.');
    case 413:
      return problem(413, 'body-too-large', 'The request body is larger than the service accepts.');
    case 415:
      return problem(415, 'unsupported-media-type', 'Send the body as application/json.');
    default:
      return status >= 500
        ? problem(500, 'internal-error', 'The service could not complete the request.')
        : problem(status, 'bad-request', 'The request could not be processed.');
  }
}

/** Error codes of a peer that hung up or was cut off while its request was being read. */
const CLIENT_GONE_CODES = new Set([
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ERR_STREAM_PREMATURE_CLOSE',
]);

/**
 * True when the error comes from the client having gone (an aborted upload,
 * a connection reset, or a request the server cut off for being too slow):
 * the socket is already destroyed, so there is nothing to answer.
 */
function clientWentAway(exception: unknown, request: FastifyRequest): boolean {
  if (request.raw.socket?.destroyed !== true) return false;
  const code = (exception as { code?: unknown } | null)?.code;
  return (
    (typeof code === 'string' && CLIENT_GONE_CODES.has(code)) ||
    (exception instanceof Error && exception.message === 'aborted')
  );
}

function describe(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}

/** A refusal that lifts with time (a lockout) says when to come back. */
function retryAfter(error: DomainError): Record<string, string> {
  const { retryAfterSeconds } = error.extensions;
  return typeof retryAfterSeconds === 'number' ? { 'retry-after': String(retryAfterSeconds) } : {};
}
