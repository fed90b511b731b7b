import {
  applyDecorators,
  CallHandler,
  ExecutionContext,
  Injectable,
  NestInterceptor,
  SetMetadata,
  UseInterceptors,
} from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { ApiExtension, ApiQuery } from '@nestjs/swagger';
import type { FastifyRequest } from 'fastify';
import { Observable } from 'rxjs';
import { ProjectionEngine } from './projection-engine';
import { problem, ProblemException, validationProblem } from '../http/problem';
import { LOG_POSITION_PATTERN } from '../http/validation';

const READ_MODELS = 'mfa:read-models';
export const MIN_POSITION_TIMEOUT_MS = 5000;

/**
 * Marks a GET as answered from these read models: `?minPosition=` then waits
 * (woken by the projections' progress, no polling) until each of them has
 * applied that log position, or answers 503 `read-model-behind` with
 * Retry-After after 5 s.
 */
export const ReadsProjections = (...projections: string[]) =>
  applyDecorators(
    SetMetadata(READ_MODELS, projections),
    UseInterceptors(MinPositionInterceptor),
    // openapi.ts lists the 503 `read-model-behind` of these reads.
    ApiExtension('x-read-models', projections),
    ApiQuery({
      name: 'minPosition',
      required: false,
      description:
        'A log position a command answered: wait (up to 5 s) until this read model has applied ' +
        'it, else 503 `read-model-behind` with Retry-After.',
      example: '42',
      schema: { type: 'string', pattern: LOG_POSITION_PATTERN.source },
    }),
  );

@Injectable()
export class MinPositionInterceptor implements NestInterceptor {
  constructor(
    private readonly reflector: Reflector,
    private readonly engine: ProjectionEngine,
  ) {}

  async intercept(context: ExecutionContext, next: CallHandler): Promise<Observable<unknown>> {
    const request = context.switchToHttp().getRequest<FastifyRequest>();
    const raw = (request.query as Record<string, unknown> | undefined)?.minPosition;
    if (raw !== undefined) {
      // Interceptors run before pipes: this check cannot wait for the query's validation.
      if (typeof raw !== 'string' || !LOG_POSITION_PATTERN.test(raw)) {
        throw validationProblem([
          { field: 'minPosition', message: 'must be a log position (digits)' },
        ]);
      }
      const projections =
        this.reflector.get<string[] | undefined>(READ_MODELS, context.getHandler()) ?? [];
      const reached = await this.engine.waitFor(BigInt(raw), projections, MIN_POSITION_TIMEOUT_MS);
      if (!reached) {
        throw new ProblemException(
          problem(
            503,
            'read-model-behind',
            `The read model has not yet applied position ${raw}; try again shortly.`,
          ),
          { 'retry-after': '1' },
        );
      }
    }
    return next.handle();
  }
}
