import { ArgumentMetadata, Logger, PipeTransform, ValidationPipe } from '@nestjs/common';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { authorize, AuthenticatedRequest, TokenRole, TokenVerifier } from '../http/auth';
import { envelopeOf, CommandRequest } from '../http/command-envelope';
import { answerError } from '../http/problem.filter';
import { PROBLEM_CONTENT_TYPE } from '../http/problem';
import { countRequest, EdgeRateLimits, LimitedRequest } from '../http/rate-limits';
import {
  IdPipe,
  LOG_POSITION_PATTERN,
  ReadQuery,
  STREAM_READ_MIN_POSITION,
} from '../http/validation';
import { isValidId } from '../shared/ids';
import { apiSchema, objectSchema } from '../http/api-schemas';
import { VERIFIED_SCHEMA } from '../verification/webauthn.dto';
import {
  CodeBody,
  digitsOf,
  TOTP_CODE_MAX_LENGTH,
  TOTP_CODE_PATTERN,
} from '../verification/code.dto';
import {
  GetLoginRequirement,
  GetLoginRequirementHandler,
  VerifyTotpCode,
  VerifyTotpCodeHandler,
} from './login.commands';

/*
 * The two login routes that every login of every user goes through, served as
 * plain Fastify routes rather than through Nest's per-request pipeline (global
 * guards, interceptor, ValidationPipe, exception filter, the CQRS buses): ADR
 * 0020. The Fastify hooks every route shares still run (security headers,
 * token verification and the per-address limit, the correlation id, the
 * settling of reserved failures); what the Nest pipeline did is done here in
 * the same order, with the same functions: authorize (AuthGuard),
 * countRequest (RateLimitGuard), IdPipe and the same ValidationPipe for
 * anything but a well-formed input, answerError (ProblemFilter).
 */

/** Who may call the login routes: the host application, and the user for themself (API.md). */
export const LOGIN_ROLES: readonly TokenRole[] = ['host', 'user'];
const BASE = '/v1/firms/:firmId/users/:userId/mfa';
export const LOGIN_REQUIREMENT_URL = `${BASE}/login-requirement`;
export const TOTP_VERIFY_URL = `${BASE}/totp/verify`;

/** What the login routes need from the application. */
export interface LoginRouteDeps {
  requirement: GetLoginRequirementHandler;
  verifyTotp: VerifyTotpCodeHandler;
  limits: EdgeRateLimits;
  /** Verifies a token when the onRequest hook did not (it always does; kept as AuthGuard). */
  verifier: TokenVerifier;
  /** The application's ValidationPipe (createValidationPipe): the answers of a bad input. */
  validation: ValidationPipe;
}

type LoginRequest = AuthenticatedRequest & LimitedRequest & CommandRequest;

/**
 * True for the one body shape a verification takes, `{ "code": "<6 digits>" }`,
 * which CodeBody's class-validator rules accept too. With valid ids, such a
 * request skips the pipes; anything else goes through them (runPipes), so a
 * refusal reads exactly as on every other route.
 */
function isWellFormedCode(body: unknown): body is CodeBody {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return false;
  const keys = Object.keys(body);
  const code = (body as { code?: unknown }).code;
  return (
    keys.length === 1 &&
    keys[0] === 'code' &&
    typeof code === 'string' &&
    code.length <= TOTP_CODE_MAX_LENGTH &&
    TOTP_CODE_PATTERN.test(code)
  );
}

const wellFormedIds = ({ firmId, userId }: { firmId: string; userId: string }) =>
  isValidId(firmId) && isValidId(userId);

/** True for no query, or only a `minPosition` of digits (ReadQuery's rules). */
function isWellFormedReadQuery(query: unknown): boolean {
  if (typeof query !== 'object' || query === null) return false;
  const keys = Object.keys(query);
  if (keys.length === 0) return true;
  const position = (query as { minPosition?: unknown }).minPosition;
  return (
    keys.length === 1 &&
    keys[0] === 'minPosition' &&
    typeof position === 'string' &&
    LOG_POSITION_PATTERN.test(position)
  );
}

/**
 * Registers GET .../login-requirement and POST .../totp/verify on the Fastify
 * instance. Register after the edge's hooks (installSecurityHeaders,
 * installRateLimitHooks) and before the application is initialised. Answers
 * and refusals are those of API.md: 401/403 from authorize, 429 from the rate
 * limits, 400 `validation-failed` for a bad id, query or body, and the
 * handlers' own problems (409 factor-not-enrolled, 401 invalid-code or
 * code-already-used, 423 totp-locked with Retry-After, ...).
 */
export function installLoginRoutes(fastify: FastifyInstance, deps: LoginRouteDeps): void {
  const logger = new Logger('HTTP');
  const idPipe = new IdPipe();

  /** AuthGuard then RateLimitGuard: the global guards, in their order. */
  const admit = async (request: LoginRequest, limit: 'verification' | null) => {
    const authentication =
      request.authentication ?? deps.verifier.authenticate(request.headers.authorization);
    authorize(request, authentication, LOGIN_ROLES);
    if (limit) await countRequest(deps.limits, limit, request);
    return request.params as { firmId: string; userId: string };
  };

  /**
   * The pipes of a controller method with parameters (firmId, userId, `input`),
   * run as Nest runs them (RouterExecutionContext.createPipesFn): every
   * parameter at once, the last declared first, the global ValidationPipe
   * before IdPipe; the first refusal is the answer. A request with several bad
   * parts is therefore refused for the same part as before (ADR 0020).
   */
  const runPipes = async (
    params: { firmId: string; userId: string },
    input: { value: unknown; type: 'body' | 'query'; metatype: new () => object },
  ): Promise<unknown> => {
    const apply = async (value: unknown, metadata: ArgumentMetadata, pipes: PipeTransform[]) =>
      pipes.reduce<Promise<unknown>>(
        async (deferred, pipe) => pipe.transform(await deferred, metadata) as unknown,
        Promise.resolve(value),
      );
    const id = (data: 'firmId' | 'userId') =>
      apply(params[data], { type: 'param', data, metatype: String }, [deps.validation, idPipe]);
    const [value] = await Promise.all([
      apply(input.value, { type: input.type, metatype: input.metatype }, [deps.validation]),
      id('userId'),
      id('firmId'),
    ]);
    return value;
  };

  /** A route's handler: its work's result is the answer, an error leaves as problem+json. */
  const answering =
    (work: (request: LoginRequest) => Promise<unknown>) =>
    async (request: FastifyRequest, reply: FastifyReply) => {
      try {
        return await work(request as LoginRequest);
      } catch (error) {
        answerError(error, request, reply, logger);
        return reply;
      }
    };

  fastify.route({
    method: 'GET',
    url: LOGIN_REQUIREMENT_URL,
    handler: answering(async (request) => {
      const params = await admit(request, null);
      if (!wellFormedIds(params) || !isWellFormedReadQuery(request.query)) {
        await runPipes(params, { value: request.query, type: 'query', metatype: ReadQuery });
      }
      return deps.requirement.execute(new GetLoginRequirement(params.firmId, params.userId));
    }),
  });

  fastify.route({
    method: 'POST',
    url: TOTP_VERIFY_URL,
    handler: answering(async (request) => {
      const params = await admit(request, 'verification');
      const body =
        wellFormedIds(params) && isWellFormedCode(request.body)
          ? request.body
          : ((await runPipes(params, {
              value: request.body,
              type: 'body',
              metatype: CodeBody,
            })) as CodeBody);
      return deps.verifyTotp.execute(
        new VerifyTotpCode(params.firmId, params.userId, digitsOf(body.code), envelopeOf(request)),
      );
    }),
  });
}

const LOGIN_REQUIREMENT_SCHEMA = apiSchema(
  'LoginRequirement',
  objectSchema(
    {
      decision: {
        type: 'string',
        enum: ['verify', 'enroll', 'bypass', 'off'],
        description:
          '`verify`: ask for a factor; `enroll`: MFA is required and the user has none yet; ' +
          '`bypass`: MFA applies but is not enforced now; `off`: no MFA for this user (also an ' +
          'unknown or inactive user).',
      },
      methods: {
        type: 'array',
        items: { type: 'string', enum: ['totp', 'webauthn'] },
        description: 'With `verify`, the factors the user holds; with `enroll`, those offered.',
      },
      reason: { type: 'string', description: 'Why, in words for the host application.' },
      instructions: { type: 'string', description: 'With `enroll`: what to tell the user.' },
    },
    { optional: ['reason', 'instructions'], example: { decision: 'verify', methods: ['totp'] } },
  ),
);

const idParameter = (name: string) => ({
  name,
  required: true,
  in: 'path',
  schema: { type: 'string' },
});

/**
 * The OpenAPI operations of the two routes, as Nest's Swagger module wrote
 * them when they were controller methods (operation ids included). The
 * conventions every operation shares (roles, problem answers, id patterns,
 * the ignored Idempotency-Key) are added by setUpOpenApi as for any route.
 */
export const LOGIN_ROUTE_OPERATIONS = {
  '/v1/firms/{firmId}/users/{userId}/mfa/login-requirement': {
    get: {
      description: 'An unknown or inactive user gets off, not 404.',
      operationId: 'LoginController_requirement',
      parameters: [
        idParameter('firmId'),
        idParameter('userId'),
        {
          name: 'minPosition',
          required: false,
          in: 'query',
          description: STREAM_READ_MIN_POSITION,
          schema: { type: 'string', pattern: LOG_POSITION_PATTERN.source },
        },
      ],
      responses: {
        '200': {
          description: 'What the user must do, from the user’s own stream.',
          content: { 'application/json': { schema: LOGIN_REQUIREMENT_SCHEMA } },
        },
      },
      security: [{ bearer: [] }],
      summary: 'What the user must do at login: verify, enroll, bypass or off',
      tags: ['Login'],
      'x-unknown-user': 'off',
      'x-roles': [...LOGIN_ROLES],
    },
  },
  '/v1/firms/{firmId}/users/{userId}/mfa/totp/verify': {
    post: {
      description:
        'The current 30 s step or one either side; a step already accepted is refused. 401 { verified: false, attemptsLeft }; five failures in a row lock TOTP for 15 minutes (423 with Retry-After).',
      operationId: 'LoginController_verifyTotp',
      parameters: [idParameter('firmId'), idParameter('userId')],
      requestBody: {
        required: true,
        content: { 'application/json': { schema: { $ref: '#/components/schemas/CodeBody' } } },
      },
      responses: {
        '200': {
          description: 'The code is accepted.',
          content: { 'application/json': { schema: VERIFIED_SCHEMA } },
        },
        '423': {
          description:
            '`totp-locked`: failed codes in a row lock TOTP for a while (by default five failures, ' +
            '15 minutes: `MFA_TOTP_LOCK_AFTER`, `MFA_TOTP_LOCK_MINUTES`); `lockedUntil`, ' +
            '`retryAfterSeconds` and Retry-After say until when. `totp-blocked`: locked until a ' +
            "firm admin resets the user's enrollment or the user logs in with a security key.",
          content: {
            [PROBLEM_CONTENT_TYPE]: {
              schema: { $ref: '#/components/schemas/Problem' },
              example: {
                type: '/problems/totp-locked',
                title: 'Locked',
                status: 423,
                detail:
                  'Too many failed codes in a row: TOTP verification is locked until 2026-03-02T09:50:00.000Z.',
                lockedUntil: '2026-03-02T09:50:00.000Z',
                retryAfterSeconds: 900,
              },
            },
          },
        },
      },
      security: [{ bearer: [] }],
      summary: 'Verify a TOTP code at login',
      tags: ['Login'],
      'x-idempotency-key': 'ignored',
      'x-rate-limit': 'verification',
      'x-roles': [...LOGIN_ROLES],
    },
  },
};
