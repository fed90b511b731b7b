import { createParamDecorator, ExecutionContext } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import { randomUUID } from 'node:crypto';
import type { CommandEnvelope } from '../command-handling/command-handler';
import type { Principal } from './auth';

export type CommandRequest = FastifyRequest & { principal: Principal; commandId?: string };

/**
 * The metadata every event of this request will carry: the firm from the
 * path, the actor from the token, the correlation id from the request (the
 * `X-Correlation-Id` header when the caller sent a valid one), and the command
 * id (derived from the Idempotency-Key when there is one).
 */
export const Envelope = createParamDecorator(
  (_data: unknown, context: ExecutionContext): CommandEnvelope =>
    envelopeOf(context.switchToHttp().getRequest<CommandRequest>()),
);

/** The envelope of an authenticated request (see Envelope); also for routes outside Nest. */
export function envelopeOf(request: CommandRequest): CommandEnvelope {
  const params = request.params as Record<string, string>;
  return {
    commandId: request.commandId ?? randomUUID(),
    // A random id cannot be in any stream yet: the handler need not look it up.
    freshCommandId: request.commandId === undefined,
    firmId: params.firmId,
    actor: { id: request.principal.id, role: request.principal.role },
    correlationId: request.id,
  };
}
