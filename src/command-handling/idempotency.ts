import {
  CallHandler,
  ExecutionContext,
  Inject,
  Injectable,
  NestInterceptor,
  SetMetadata,
} from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { HTTP_CODE_METADATA } from '@nestjs/common/constants';
import { createHash } from 'node:crypto';
import { catchError, from, mergeMap, Observable, tap, throwError } from 'rxjs';
import Database from 'better-sqlite3';
import { DomainError } from '../shared/domain-error';
import { deterministicId } from '../shared/deterministic-id';
import type { CommandRequest } from '../http/command-envelope';
import { problem, problemFromDomainError, ProblemException } from '../http/problem';

/** The first answer to a command sent with an Idempotency-Key. */
export interface IdempotencyRecord {
  fingerprint: string;
  status: number;
  body: unknown;
  contentType: string;
}

/** Port: where first answers are kept. */
export interface IdempotencyStore {
  get(scope: string): Promise<IdempotencyRecord | undefined>;
  /** Keeps the first record for a scope; a second put for the same scope is ignored. */
  putIfAbsent(scope: string, record: IdempotencyRecord): Promise<void>;
}

export const IDEMPOTENCY_STORE = Symbol('IdempotencyStore');

/** Keys are kept this long; a retry after that is a new command. */
const RETENTION_MS = 24 * 60 * 60 * 1000;

export class SqliteIdempotencyStore implements IdempotencyStore {
  private readonly select;
  private readonly insert;
  private readonly purge;
  private lastPurge = 0;

  constructor(db: Database.Database) {
    db.exec(`CREATE TABLE IF NOT EXISTS idempotency_keys (
      scope TEXT PRIMARY KEY,
      fingerprint TEXT NOT NULL,
      status INTEGER NOT NULL,
      content_type TEXT NOT NULL,
      body TEXT NOT NULL,
      created_at INTEGER NOT NULL
    ) WITHOUT ROWID`);
    this.select = db.prepare('SELECT * FROM idempotency_keys WHERE scope = ?');
    this.insert = db.prepare(
      `INSERT OR IGNORE INTO idempotency_keys (scope, fingerprint, status, content_type, body, created_at)
       VALUES (?, ?, ?, ?, ?, ?)`,
    );
    this.purge = db.prepare('DELETE FROM idempotency_keys WHERE created_at < ?');
  }

  get(scope: string): Promise<IdempotencyRecord | undefined> {
    const row = this.select.get(scope) as
      | {
          fingerprint: string;
          status: number;
          content_type: string;
          body: string;
          created_at: number;
        }
      | undefined;
    if (!row || Number(row.created_at) < Date.now() - RETENTION_MS)
      return Promise.resolve(undefined);
    return Promise.resolve({
      fingerprint: row.fingerprint,
      status: Number(row.status),
      contentType: row.content_type,
      body: JSON.parse(row.body),
    });
  }

  putIfAbsent(scope: string, record: IdempotencyRecord): Promise<void> {
    const now = Date.now();
    if (now - this.lastPurge > 60_000) {
      this.lastPurge = now;
      this.purge.run(now - RETENTION_MS);
    }
    this.insert.run(
      scope,
      record.fingerprint,
      record.status,
      record.contentType,
      JSON.stringify(record.body),
      now,
    );
    return Promise.resolve();
  }
}

/** Thrown to answer a retried command with the first answer, status and all. */
export class StoredResponse extends Error {
  constructor(readonly record: IdempotencyRecord) {
    super('Replayed idempotent response');
  }
}

const KEY_PATTERN = /^[\x21-\x7e]{1,255}$/;

const SECRET_ANSWER = 'mfa:secret-answer';
/**
 * The answer carries a secret (a TOTP enrollment's otpauth URI): it is never
 * stored. A retry with the same key runs the command again under the same
 * command id, and the command, idempotent by that id, answers what it
 * answered the first time.
 */
export const SecretAnswer = () => SetMetadata(SECRET_ANSWER, true);

/**
 * `Idempotency-Key` on a command: the first answer (success or refusal) is
 * kept for 24 h and a retry gets it again without running the command. The
 * key is scoped to the caller; reusing it for a different request is a 422.
 * The command id, and so every event id, derives from the key: should the
 * process die after the append but before the answer was kept, the retry's
 * append is recognised by the event store and not written twice.
 */
@Injectable()
export class IdempotencyInterceptor implements NestInterceptor {
  private readonly inFlight = new Set<string>();

  constructor(
    @Inject(IDEMPOTENCY_STORE) private readonly store: IdempotencyStore,
    private readonly reflector: Reflector,
  ) {}

  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    const request = context.switchToHttp().getRequest<CommandRequest>();
    const header = request.headers['idempotency-key'];
    // Only authenticated commands: the key is scoped to the caller.
    if (
      request.method === 'GET' ||
      request.method === 'HEAD' ||
      header === undefined ||
      !request.principal
    ) {
      return next.handle();
    }
    const key = Array.isArray(header) ? header[0] : header;
    if (!KEY_PATTERN.test(key)) {
      throw new ProblemException(
        problem(
          400,
          'invalid-idempotency-key',
          'Idempotency-Key must be 1-255 visible ASCII characters.',
        ),
      );
    }
    const { principal } = request;
    const scope = sha256([principal.role, principal.id, principal.firm ?? '', key].join('\u0000'));
    const fingerprint = sha256(
      [request.method, request.url.split('?')[0], canonicalJson(request.body ?? null)].join(
        '\u0000',
      ),
    );
    const status =
      (Reflect.getMetadata(HTTP_CODE_METADATA, context.getHandler()) as number | undefined) ??
      (request.method === 'POST' ? 201 : 200);

    if (this.reflector.get<boolean>(SECRET_ANSWER, context.getHandler())) {
      request.commandId = deterministicId('command', scope);
      return next.handle();
    }

    return from(this.store.get(scope)).pipe(
      mergeMap((stored) => {
        if (stored) {
          if (stored.fingerprint !== fingerprint) {
            throw new ProblemException(
              problem(
                422,
                'idempotency-key-reused',
                'This Idempotency-Key was used for a different request.',
              ),
            );
          }
          throw new StoredResponse(stored);
        }
        if (this.inFlight.has(scope)) {
          throw new ProblemException(
            problem(
              409,
              'idempotency-request-in-progress',
              'A request with this Idempotency-Key is still running.',
            ),
            { 'retry-after': '1' },
          );
        }
        this.inFlight.add(scope);
        request.commandId = deterministicId('command', scope);
        const keep = (record: Omit<IdempotencyRecord, 'fingerprint'>) =>
          this.store.putIfAbsent(scope, { fingerprint, ...record });
        return next.handle().pipe(
          mergeMap(async (body) => {
            await keep({ status, body, contentType: 'application/json; charset=utf-8' });
            return body;
          }),
          catchError((error: unknown) => {
            // Refusals are answers too; a conflict on concurrency is not: retrying may succeed.
            if (error instanceof DomainError && error.code !== 'concurrency-conflict') {
              const body = problemFromDomainError(error);
              return from(
                keep({ status: body.status, body, contentType: 'application/problem+json' }),
              ).pipe(mergeMap(() => throwError(() => error)));
            }
            return throwError(() => error);
          }),
          tap({ finalize: () => this.inFlight.delete(scope) }),
        );
      }),
    );
  }
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/** JSON with sorted keys, so that the same body always fingerprints the same. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.keys(value as object)
      .sort()
      .map(
        (key) => `${JSON.stringify(key)}:${canonicalJson((value as Record<string, unknown>)[key])}`,
      );
    return `{${entries.join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}
