import { Logger, LoggerService, LogLevel } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, NestFastifyApplication } from '@nestjs/platform-fastify';
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { AppModule, Infrastructure } from './app.module';
import { IdempotencyStore } from './command-handling/idempotency-store.port';
import { SqliteIdempotencyStore } from './command-handling/sqlite-idempotency-store';
import { KeyStore } from './crypto/key-store.port';
import { SqliteKeyStore } from './crypto/sqlite-key-store';
import { AppConfig } from './config/config';
import { EventStore } from './event-store/event-store.port';
import { SqliteEventStore } from './event-store/sqlite-event-store';
import { openReadModelStore } from './read-model/open-read-model-store';
import { problem } from './http/problem';
import { sendProblem } from './http/problem.filter';
import { TokenVerifier } from './http/auth';
import { applyConnectionCap, httpServerOptions } from './http/http-server';
import { installJsonBodyParser } from './http/json-body';
import { setUpOpenApi } from './http/openapi';
import { MongoRateLimitStore, RateLimitStore, SqliteRateLimitStore } from './http/rate-limit-store';
import { EdgeRateLimits, installRateLimitHooks } from './http/rate-limits';
import { installSecurityHeaders, setRawAnswerHeaders } from './http/security-headers';
import { createValidationPipe } from './http/validation';
import { Clock, systemClock } from './shared/clock';
import { isValidId } from './shared/ids';

export interface CreateAppOptions {
  clock?: Clock;
  logLevels?: LogLevel[];
  /** Receives every log line instead of the console (tests read what was logged). */
  logger?: LoggerService;
}

/** Opens the stores the configuration names: SQLite files under DATA_DIR unless URLs say otherwise. */
export async function openInfrastructure(
  config: AppConfig,
  clock: Clock = systemClock,
): Promise<Infrastructure> {
  mkdirSync(config.dataDir, { recursive: true });
  // First: a master key that cannot open the stored keys stops the start before anything else opens.
  const keyStore = await openKeyStore(config);
  const eventStore = await openEventStore(config);
  const readModelStore = await openReadModelStore(config);
  const idempotencyStore = await openIdempotencyStore(config);
  const rateLimitStore = await openRateLimitStore(config);
  return {
    config,
    eventStore,
    readModelStore,
    idempotencyStore,
    keyStore,
    rateLimitStore,
    clock,
    close: async () => {
      await eventStore.close();
      await readModelStore.close();
      await keyStore.close();
      await idempotencyStore.close();
      await rateLimitStore.close();
    },
  };
}

async function openEventStore(config: AppConfig): Promise<EventStore> {
  if (!config.eventStoreUrl) return new SqliteEventStore(join(config.dataDir, 'events.sqlite'));
  // Loaded only when configured: the gRPC client is not needed by the embedded default.
  const { KurrentDbEventStore } = await import('./event-store/kurrentdb-event-store');
  return new KurrentDbEventStore(config.eventStoreUrl);
}

/**
 * The keys that seal TOTP secrets: a SQLite file of their own, or MongoDB with the read models.
 * Opened only once the master key is proven to open every stored key (a rotation re-wraps them
 * first); otherwise a ConfigError naming MFA_MASTER_KEY, rather than a 500 on every TOTP check.
 */
async function openKeyStore(config: AppConfig): Promise<KeyStore> {
  let keyStore: KeyStore;
  if (!config.mongodbUrl) {
    keyStore = new SqliteKeyStore(
      join(config.dataDir, 'keys.sqlite'),
      config.masterKey,
      config.previousMasterKey,
    );
  } else {
    const { MongoKeyStore } = await import('./crypto/mongo-key-store');
    keyStore = await MongoKeyStore.connect(config.mongodbUrl, config.masterKey, {
      previousMasterKey: config.previousMasterKey,
    });
  }
  try {
    const adoption = await keyStore.adoptMasterKey();
    if (adoption.previousConfigured) {
      new Logger('MasterKey').warn(
        `${adoption.rewrapped} data keys re-wrapped from MFA_MASTER_KEY_PREVIOUS to MFA_MASTER_KEY by this process; all ${adoption.dataKeys} now open with MFA_MASTER_KEY. Remove MFA_MASTER_KEY_PREVIOUS once every instance runs with the new key.`,
      );
    }
  } catch (error) {
    await keyStore.close();
    throw error;
  }
  return keyStore;
}

/**
 * Idempotency keys where every instance of the deployment finds them: MongoDB
 * with the read models when MONGODB_URL is set, else DATA_DIR/state.sqlite,
 * which the instances on one data folder share.
 */
async function openIdempotencyStore(config: AppConfig): Promise<IdempotencyStore> {
  if (!config.mongodbUrl) {
    return new SqliteIdempotencyStore(join(config.dataDir, 'state.sqlite'));
  }
  const { MongoIdempotencyStore } = await import('./command-handling/mongodb-idempotency-store');
  return MongoIdempotencyStore.connect(config.mongodbUrl);
}

/** Rate-limit counters where every instance sees them: state.sqlite, or MongoDB (ADR 0016). */
async function openRateLimitStore(config: AppConfig): Promise<RateLimitStore> {
  if (!config.mongodbUrl) return new SqliteRateLimitStore(join(config.dataDir, 'state.sqlite'));
  return MongoRateLimitStore.connect(config.mongodbUrl);
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
  app.useGlobalPipes(createValidationPipe(config.maxJsonDepth));
  const fastify = app.getHttpAdapter().getInstance();
  // Fastify parses text/plain by default; anything but JSON is a 415.
  fastify.removeContentTypeParser('text/plain');
  installJsonBodyParser(fastify, config.maxJsonDepth);
  // Hooks before routes: headers first, so that every answer, a 429 included, carries them.
  await installSecurityHeaders(fastify);
  installRateLimitHooks(fastify, new TokenVerifier(config), app.get(EdgeRateLimits));
  fastify.addHook('onSend', async (request, reply, payload) => {
    reply.header('x-correlation-id', request.id);
    return payload;
  });
  setUpOpenApi(app);
  await app.init();
  return app;
}
