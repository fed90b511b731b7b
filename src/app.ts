import { LoggerService, LogLevel } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, NestFastifyApplication } from '@nestjs/platform-fastify';
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { randomUUID } from 'node:crypto';
import { AppModule } from './app.module';
import { openInfrastructure } from './infrastructure/open-infrastructure';
import { AppConfig } from './config/config';
import { problem } from './http/problem';
import { sendProblem } from './http/problem.filter';
import { TokenVerifier } from './http/auth';
import { applyConnectionCap, httpServerOptions } from './http/http-server';
import { installJsonBodyParser } from './http/json-body';
import { setUpOpenApi } from './http/openapi';
import { EdgeRateLimits, installRateLimitHooks } from './http/rate-limits';
import { installSecurityHeaders, setRawAnswerHeaders } from './http/security-headers';
import { createValidationPipe } from './http/validation';
import { Clock } from './shared/clock';
import { serveWebPages } from './web/web-pages';
import { isValidId } from './shared/ids';
import { GetLoginRequirementHandler, VerifyTotpCodeHandler } from './login/login.commands';
import { installLoginRoutes, LOGIN_ROUTE_OPERATIONS } from './login/login.routes';

export interface CreateAppOptions {
  clock?: Clock;
  logLevels?: LogLevel[];
  /** Receives every log line instead of the console (tests read what was logged). */
  logger?: LoggerService;
}

export async function createApp(
  config: AppConfig,
  options: CreateAppOptions = {},
): Promise<NestFastifyApplication> {
  const infrastructure = await openInfrastructure(config, options.clock);
  const adapter = new FastifyAdapter({
    bodyLimit: config.bodyLimit,
    // Timeouts, the client-error answers and the trusted proxies (docs/security.md).
    ...httpServerOptions(config.http),
    // The correlation id of every event: the caller's X-Correlation-Id when it is a valid id.
    genReqId: (request: { headers: Record<string, string | string[] | undefined> }) => {
      const header = request.headers['x-correlation-id'];
      return isValidId(header) ? header : randomUUID();
    },
    requestIdHeader: false,
    logger: false,
    // Ids may be 128 characters (Fastify's default stops at 100); longer ones reach IdPipe's 400.
    routerOptions: { maxParamLength: 512 },
    // Errors of Fastify's router, before any route runs: still problem+json.
    frameworkErrors: (error: FastifyError, _request: FastifyRequest, reply: FastifyReply) => {
      const tooLong = error.code === 'FST_ERR_MAX_PARAM_LENGTH';
      // No onRequest hook ran for these: the security headers are set here.
      setRawAnswerHeaders((name, value) => reply.header(name, value));
      sendProblem(
        reply,
        tooLong
          ? problem(400, 'validation-failed', 'A path parameter is too long.', {
              errors: [{ field: 'path', message: 'ids are at most 128 characters' }],
            })
          : problem(400, 'bad-request', 'The request URL could not be read.'),
      );
    },
  });
  const app = await NestFactory.create<NestFastifyApplication>(
    AppModule.forRoot(infrastructure),
    adapter,
    // Nest's own parsers would add form bodies; only JSON is a command body here.
    {
      logger: options.logger ?? options.logLevels ?? ['error', 'warn', 'log'],
      bufferLogs: false,
      bodyParser: false,
    },
  );
  applyConnectionCap(app.getHttpServer(), config.http);
  const validation = createValidationPipe(config.maxJsonDepth);
  app.useGlobalPipes(validation);
  const fastify = app.getHttpAdapter().getInstance();
  // Fastify parses text/plain by default; anything but JSON is a 415.
  fastify.removeContentTypeParser('text/plain');
  installJsonBodyParser(fastify, config.maxJsonDepth);
  // Hooks before routes: headers first, so that every answer, a 429 included, carries them.
  await installSecurityHeaders(fastify);
  const verifier = new TokenVerifier(config);
  installRateLimitHooks(fastify, verifier, app.get(EdgeRateLimits));
  fastify.addHook('onSend', async (request, reply, payload) => {
    reply.header('x-correlation-id', request.id);
    return payload;
  });
  // The two routes of every login, outside Nest's per-request pipeline (ADR 0020).
  installLoginRoutes(fastify, {
    requirement: app.get(GetLoginRequirementHandler),
    verifyTotp: app.get(VerifyTotpCodeHandler),
    limits: app.get(EdgeRateLimits),
    verifier,
    validation,
  });
  setUpOpenApi(app, LOGIN_ROUTE_OPERATIONS);
  // The firm admin's page and the user's enrollment page (docs/web-pages.md).
  serveWebPages(fastify);
  // The root, where a browser pointed at the service lands first: the API docs (HEAD as well).
  fastify.route({
    method: 'GET',
    url: '/',
    handler: (_request, reply) => reply.redirect('/docs', 302),
  });
  await app.init();
  return app;
}
