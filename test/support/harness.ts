import Database from 'better-sqlite3';
import type { LoggerService } from '@nestjs/common';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import jwt from 'jsonwebtoken';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createApp } from '../../src/app';
import { AppConfig, loadConfig } from '../../src/config/config';
import { SqliteEventStore } from '../../src/event-store/sqlite-event-store';
import type { RecordedEvent } from '../../src/event-store/event-store.port';
import type { Clock } from '../../src/shared/clock';
import type { TokenRole } from '../../src/http/auth';

export const TEST_JWT_SECRET = 'test-secret-test-secret-test-secret-0123456789';
export const TEST_MASTER_KEY = '00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff';

export function tempDir(prefix = 'mfa-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export function testConfig(
  dataDir: string,
  env: Record<string, string> = {},
  { withoutSecret = false } = {},
): AppConfig {
  return loadConfig({
    DATA_DIR: dataDir,
    ...(withoutSecret ? {} : { MFA_JWT_SECRET: TEST_JWT_SECRET }),
    MFA_MASTER_KEY: TEST_MASTER_KEY,
    PORT: '0',
    ...env,
  }).config;
}

export interface TokenOptions {
  firm?: string;
  sub?: string;
  expiresIn?: number;
  secret?: string;
  claims?: Record<string, unknown>;
}

export function token(role: TokenRole | string, options: TokenOptions = {}): string {
  const claims: Record<string, unknown> = { role, ...options.claims };
  if (options.firm !== undefined) claims.firm = options.firm;
  return jwt.sign(claims, options.secret ?? TEST_JWT_SECRET, {
    algorithm: 'HS256',
    subject: options.sub ?? `test-${role}`,
    expiresIn: options.expiresIn ?? 300,
  });
}

export interface ApiResponse<T = any> {
  status: number;
  headers: Headers;
  body: T;
  text: string;
}

export interface RequestOptions {
  token?: string;
  body?: unknown;
  /** Sent as is, instead of JSON-encoding `body`. */
  rawBody?: string;
  headers?: Record<string, string>;
}

/** A small HTTP client for the running service: real sockets, real parsing. */
export class Api {
  constructor(readonly baseUrl: string) {}

  async request<T = any>(
    method: string,
    path: string,
    options: RequestOptions = {},
  ): Promise<ApiResponse<T>> {
    const headers: Record<string, string> = { ...options.headers };
    if (options.token) headers.authorization = `Bearer ${options.token}`;
    let body: string | undefined = options.rawBody;
    if (body === undefined && options.body !== undefined) body = JSON.stringify(options.body);
    if (
      body !== undefined &&
      !Object.keys(headers).some((h) => h.toLowerCase() === 'content-type')
    ) {
      headers['content-type'] = 'application/json';
    }
    const response = await fetch(`${this.baseUrl}${path}`, { method, headers, body });
    const text = await response.text();
    let parsed: unknown = text;
    // JSON and problem+json are parsed; NDJSON (the audit export) stays text, one document a line.
    const type = response.headers.get('content-type') ?? '';
    if (/^application\/([\w.-]+\+)?json\b/.test(type) && text.length > 0) {
      parsed = JSON.parse(text);
    }
    return { status: response.status, headers: response.headers, body: parsed as T, text };
  }

  get<T = any>(path: string, token?: string) {
    return this.request<T>('GET', path, { token });
  }
  post<T = any>(
    path: string,
    token: string | undefined,
    body: unknown = {},
    headers?: Record<string, string>,
  ) {
    return this.request<T>('POST', path, { token, body, headers });
  }
  put<T = any>(
    path: string,
    token: string | undefined,
    body: unknown,
    headers?: Record<string, string>,
  ) {
    return this.request<T>('PUT', path, { token, body, headers });
  }
  delete<T = any>(path: string, token?: string) {
    return this.request<T>('DELETE', path, { token });
  }
}

export interface RunningService {
  api: Api;
  app: NestFastifyApplication;
  dataDir: string;
  config: AppConfig;
  stop(): Promise<void>;
  /** Every event in the log, read straight from the SQLite file. */
  events(): Promise<RecordedEvent[]>;
}

export async function startService(
  options: {
    dataDir?: string;
    clock?: Clock;
    env?: Record<string, string>;
    /** Leave MFA_JWT_SECRET unset (to configure MFA_JWT_PUBLIC_KEY instead). */
    withoutSecret?: boolean;
    /** Receives every log line, at every level (see CapturingLogger). */
    logger?: LoggerService;
    /** The port to listen on (127.0.0.1); any free one by default. See freePort. */
    port?: number;
  } = {},
): Promise<RunningService> {
  const ownsDir = options.dataDir === undefined;
  const dataDir = options.dataDir ?? tempDir();
  const config = testConfig(dataDir, options.env, { withoutSecret: options.withoutSecret });
  const app = await createApp(config, {
    clock: options.clock,
    logLevels: ['error'],
    logger: options.logger,
  });
  await app.listen(options.port ?? 0, '127.0.0.1');
  const address = app.getHttpServer().address() as { port: number };
  const api = new Api(`http://127.0.0.1:${address.port}`);
  let stopped = false;
  return {
    api,
    app,
    dataDir,
    config,
    async stop() {
      if (stopped) return;
      stopped = true;
      await app.close();
      if (ownsDir) rmSync(dataDir, { recursive: true, force: true });
    },
    events: () => readLog(dataDir),
  };
}

/**
 * A port free on 127.0.0.1 right now: for a service whose configuration must
 * name its own address before it starts (WEBAUTHN_ORIGIN for pages it serves).
 */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export async function readLog(dataDir: string): Promise<RecordedEvent[]> {
  const store = new SqliteEventStore(join(dataDir, 'events.sqlite'));
  try {
    return await store.readAll({ after: 0n, maxCount: 1_000_000 });
  } finally {
    await store.close();
  }
}

/** A clock that only moves when the test says so. */
export class TestClock implements Clock {
  constructor(private current = new Date('2026-01-15T09:00:00.000Z')) {}
  now(): Date {
    return new Date(this.current);
  }
  advance(ms: number): void {
    this.current = new Date(this.current.getTime() + ms);
  }
}

/** A log line as the service wrote it: level, context, message and the stack when one was given. */
export interface LogLine {
  level: 'log' | 'error' | 'warn' | 'debug' | 'verbose' | 'fatal';
  message: string;
  context?: string;
  stack?: string;
}

/** Keeps every line the service logs, at every level, for a test to read. */
export class CapturingLogger implements LoggerService {
  readonly lines: LogLine[] = [];

  log(message: unknown, context?: string) {
    this.lines.push({ level: 'log', message: String(message), context });
  }
  error(message: unknown, stack?: string, context?: string) {
    this.lines.push({ level: 'error', message: String(message), stack, context });
  }
  warn(message: unknown, context?: string) {
    this.lines.push({ level: 'warn', message: String(message), context });
  }
  debug(message: unknown, context?: string) {
    this.lines.push({ level: 'debug', message: String(message), context });
  }
  verbose(message: unknown, context?: string) {
    this.lines.push({ level: 'verbose', message: String(message), context });
  }
  fatal(message: unknown, stack?: string, context?: string) {
    this.lines.push({ level: 'fatal', message: String(message), stack, context });
  }
}

/**
 * What a crash between an append and the record of its answer leaves: no
 * stored Idempotency-Key answers at all, in the data folder's state store.
 * Throws when the folder has no such table (the test would prove nothing).
 */
export function forgetStoredAnswers(dataDir: string): void {
  const db = new Database(join(dataDir, 'state.sqlite'));
  try {
    const tables = db
      .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE '%idempot%'")
      .pluck()
      .all() as string[];
    if (tables.length === 0) throw new Error(`No idempotency table in ${dataDir}/state.sqlite`);
    for (const table of tables) db.prepare(`DELETE FROM "${table}"`).run();
  } finally {
    db.close();
  }
}
