import {
  applyDecorators,
  CallHandler,
  ExecutionContext,
  Inject,
  Injectable,
  NestInterceptor,
  SetMetadata,
} from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { HTTP_CODE_METADATA } from '@nestjs/common/constants';
import { ApiExtension } from '@nestjs/swagger';
import { createHash } from 'node:crypto';
import { catchError, from, mergeMap, Observable, tap, throwError } from 'rxjs';
import { DomainError } from '../shared/domain-error';
import { deterministicId } from '../shared/deterministic-id';
import type { CommandRequest } from './command-envelope';
import { problem, problemFromDomainError, ProblemException } from './problem';
import { IDEMPOTENCY_STORE, IdempotencyRecord, IdempotencyStore } from './idempotency-store.port';

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

const IGNORES_KEY = 'mfa:ignores-idempotency-key';
/**
 * A verification (API.md, Commands): the route ignores `Idempotency-Key`. A
 * retried verification is a new attempt under a fresh command id, so a code
 * already accepted is refused as a replay; a kept `{ verified: true }`
 * replayed for 24 h would be a login without a second factor. The OpenAPI
 * description says so (`x-idempotency-key: ignored`, see openapi.ts).
 */
export const IgnoresIdempotencyKey = () =>
  applyDecorators(SetMetadata(IGNORES_KEY, true), ApiExtension('x-idempotency-key', 'ignored'));

const JSON_CONTENT_TYPE = 'application/json; charset=utf-8';

/**
 * `Idempotency-Key` on a command: the first answer (success or refusal) is
 * kept for 24 h in the deployment's shared store and a retry, on any
 * instance, gets it again without running the command. The key is scoped to
 * the caller and to the firm in the path; reusing it for a different request
 * is a 422. The scope is claimed in the store before the command runs, so a
 * retry arriving while it runs (on any instance) is a 409. The command id,
 * and so every event id, derives from the scope: should the process die
 * after the append but before the answer was kept, the retry (once the dead
 * claim expired) appends nothing new.
 */
@Injectable()
export class IdempotencyInterceptor implements NestInterceptor {
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
      !request.principal ||
      this.reflector.get<boolean>(IGNORES_KEY, context.getHandler())
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
    const firmInPath = (request.params as Record<string, string | undefined>).firmId ?? '';
    // A host without a firm claim syncs many firms: `sync-user-42` in firm a is not firm b's.
    const scope = sha256(
      [principal.role, principal.id, principal.firm ?? '', firmInPath, key].join('\u0000'),
    );
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

    return from(this.store.claim(scope, fingerprint)).pipe(
      mergeMap((claim) => {
        if (claim.state !== 'claimed') {
          const held = claim.state === 'answered' ? claim.record.fingerprint : claim.fingerprint;
          if (held !== fingerprint) {
            throw new ProblemException(
              problem(
                422,
                'idempotency-key-reused',
                'This Idempotency-Key was used for a different request.',
              ),
            );
          }
          if (claim.state === 'answered') throw new StoredResponse(claim.record);
          throw new ProblemException(
            problem(
              409,
              'idempotency-request-in-progress',
              'A request with this Idempotency-Key is still running.',
            ),
            { 'retry-after': '1' },
          );
        }
        request.commandId = deterministicId('command', scope);
        let settled = false;
        /**
         * Keeps this run's answer unless another run of the key kept one first (this run's claim
         * expired while it ran and a retry took the key over). Resolves to the kept answer when
         * it is not this run's: the client gets that one, as every retry will.
         */
        const keep = async (
          record: Omit<IdempotencyRecord, 'fingerprint'>,
        ): Promise<IdempotencyRecord | undefined> => {
          const own = { fingerprint, ...record };
          const kept = await this.store.complete(scope, own);
          settled = true;
          // Kept for another request under the same key (a different body, after this claim
          // expired): not this request's answer; a retry of this one is told 422.
          if (kept.fingerprint !== fingerprint) return undefined;
          return sameAnswer(kept, own) ? undefined : kept;
        };
        return next.handle().pipe(
          mergeMap(async (body) => {
            const first = await keep({ status, body, contentType: JSON_CONTENT_TYPE });
            if (first) throw new StoredResponse(first);
            return body;
          }),
          catchError((error: unknown) => {
            if (error instanceof StoredResponse) return throwError(() => error);
            // Refusals are answers too; a conflict on concurrency is not: retrying may succeed.
            if (error instanceof DomainError && error.code !== 'concurrency-conflict') {
              const body = problemFromDomainError(error);
              return from(
                keep({ status: body.status, body, contentType: 'application/problem+json' }),
              ).pipe(
                mergeMap((first) => throwError(() => (first ? new StoredResponse(first) : error))),
              );
            }
            return throwError(() => error);
          }),
          // Nothing kept (invalid body, unexpected error, client gone): the next try runs at once.
          // Should the release itself fail, the claim still expires after its timeout.
          tap({
            finalize: () => {
              if (!settled) void this.store.release(scope, claim.claimId).catch(() => undefined);
            },
          }),
        );
      }),
    );
  }
}

/** The same answer to the client: status, content type and body as JSON once stored. */
function sameAnswer(kept: IdempotencyRecord, own: IdempotencyRecord): boolean {
  return (
    kept.status === own.status &&
    kept.contentType === own.contentType &&
    canonicalJson(kept.body) === canonicalJson(JSON.parse(JSON.stringify(own.body ?? null)))
  );
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
