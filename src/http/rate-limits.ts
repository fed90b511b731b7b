import {
  applyDecorators,
  CanActivate,
  ExecutionContext,
  Inject,
  Injectable,
  Logger,
  SetMetadata,
} from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { ApiExtension } from '@nestjs/swagger';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { APP_CONFIG } from '../config/config';
import type { AppConfig, RateLimits } from '../config/config';
import { isValidId } from '../shared/ids';
import type { AuthenticatedRequest, Principal, TokenVerifier } from './auth';
import { problem, ProblemException } from './problem';
import { sendProblem } from './problem.filter';
import { RATE_LIMIT_STORE, RateCounter, RateDecision, RateLimitStore } from './rate-limit-store';

/** Which limit refused a request; the `limit` member of a 429 answer. */
export type LimitKind = 'user' | 'caller-failures' | 'firm-failures' | 'address';

const details: Record<LimitKind, string> = {
  user: 'Too many verification and enrollment requests for this user.',
  'caller-failures': 'Too many failed verifications by this caller.',
  'firm-failures': 'Too many failed verifications in this firm.',
  address: 'Too many requests without a valid token from this address.',
};

/** The 429 answer of a limit: problem+json with `Retry-After` (RFC 9110 §10.2.3), in seconds. */
export function tooManyRequests(limit: LimitKind, retryAfterSeconds: number): ProblemException {
  return new ProblemException(
    problem(429, 'too-many-requests', `${details[limit]} Retry after ${retryAfterSeconds} s.`, {
      limit,
      retryAfterSeconds,
    }),
    { 'retry-after': String(retryAfterSeconds) },
  );
}

/** Failure counts taken ahead of a verification; given back unless it fails. */
export interface VerificationReservation {
  taken: Array<{ counter: RateCounter; key: string }>;
}

/**
 * The service's rate limits (API.md "Limits", docs/security.md). Nearly every
 * call comes from the host application, from a few addresses, on behalf of all
 * its users, so no limit is per address except for requests without a valid
 * token. Instead:
 *
 * - per target user (the path's firm and user) on the verification and
 *   enrollment routes: a flood of starts, options or codes for one user;
 * - failed verifications per caller (role and `sub` of the token) and per firm
 *   (the path's firm): a guess sprayed across many users, which the per-user
 *   TOTP lock cannot see, is slowed;
 * - requests without a valid token, per client address.
 *
 * A failure is known only from the answer (a 401 on a verification route), so
 * each verification first *takes* one failure from the caller's and the firm's
 * counters, and gives it back when the answer is not a 401. A burst of
 * concurrent guesses therefore cannot all pass a check made before any of them
 * failed: at most the limit's worth are in flight or failed per window.
 */
@Injectable()
export class EdgeRateLimits {
  private readonly logger = new Logger('RateLimits');
  private readonly perUser: RateCounter | null;
  private readonly failuresPerCaller: RateCounter | null;
  private readonly failuresPerFirm: RateCounter | null;
  private readonly perAddress: RateCounter | null;

  constructor(
    @Inject(APP_CONFIG) config: AppConfig,
    @Inject(RATE_LIMIT_STORE) store: RateLimitStore,
  ) {
    const limits: RateLimits = config.rateLimits;
    this.perUser = limits.perUser && store.counter('user', limits.perUser, { blockInMemory: true });
    this.failuresPerCaller =
      limits.failuresPerCaller && store.counter('caller-failures', limits.failuresPerCaller);
    this.failuresPerFirm =
      limits.failuresPerFirm && store.counter('firm-failures', limits.failuresPerFirm);
    this.perAddress =
      limits.perAddress && store.counter('address', limits.perAddress, { blockInMemory: true });
  }

  /** Counts a request without a valid token from `address`; throws the 429 when over. */
  async countAnonymous(address: string): Promise<void> {
    await this.take(this.perAddress, address, 'address');
  }

  /** Counts a verification or enrollment request for one user; throws the 429 when over. */
  async countForUser(firmId: string, userId: string): Promise<void> {
    // `/` is outside the id alphabet: `a/b-c` and `a-b/c` stay apart.
    await this.take(this.perUser, `${firmId}/${userId}`, 'user');
  }

  /**
   * Takes one failure from the caller's and the firm's counters before a
   * verification runs; throws the 429 (giving back what it took) when either
   * is spent. Settle the reservation with the answer's status.
   */
  async reserveVerification(caller: Principal, firmId: string): Promise<VerificationReservation> {
    const reservation: VerificationReservation = { taken: [] };
    const wanted: Array<[RateCounter | null, string, LimitKind]> = [
      [this.failuresPerCaller, `${caller.role}:${caller.id}`, 'caller-failures'],
      [this.failuresPerFirm, firmId, 'firm-failures'],
    ];
    for (const [counter, key, kind] of wanted) {
      if (!counter) continue;
      const decision = await counter.take(key);
      reservation.taken.push({ counter, key });
      if (!decision.allowed) {
        await this.settle(reservation, false);
        throw tooManyRequests(kind, decision.retryAfterSeconds);
      }
    }
    return reservation;
  }

  /** Keeps the reserved failures when the verification failed, gives them back otherwise. */
  async settle(reservation: VerificationReservation, failed: boolean): Promise<void> {
    if (failed) return;
    const taken = reservation.taken.splice(0);
    await Promise.all(
      taken.map(({ counter, key }) =>
        counter.giveBack(key).catch((error: unknown) => {
          // Not giving back only counts one failure too many until the window ends.
          this.logger.warn(`Could not give back a failure count: ${String(error)}`);
        }),
      ),
    );
  }

  private async take(counter: RateCounter | null, key: string, kind: LimitKind): Promise<void> {
    if (!counter) return;
    const decision: RateDecision = await counter.take(key);
    if (!decision.allowed) throw tooManyRequests(kind, decision.retryAfterSeconds);
  }
}

const RATE_LIMITED = 'mfa:rate-limited';

/**
 * Puts a route under the per-user limit of its path's user, and with
 * `'verification'` also counts its 401 answers as failed verifications of the
 * caller and the firm.
 */
export const RateLimited = (kind: 'user' | 'verification') =>
  applyDecorators(SetMetadata(RATE_LIMITED, kind), ApiExtension('x-rate-limit', kind));

export type LimitedRequest = AuthenticatedRequest & {
  verificationReservation?: VerificationReservation | null;
  /** Set by the problem filter for a replayed code: refused, but not a guess. */
  notAGuess?: boolean;
};

/**
 * Global guard, after AuthGuard: only requests that are authenticated and
 * authorized for the user count against that user's limit, so nobody can
 * spend another user's budget with a token that may not act on it.
 */
@Injectable()
export class RateLimitGuard implements CanActivate {
  constructor(
    private readonly reflector: Reflector,
    private readonly limits: EdgeRateLimits,
  ) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const kind = this.reflector.get<'user' | 'verification' | undefined>(
      RATE_LIMITED,
      context.getHandler(),
    );
    if (!kind) return true;
    await countRequest(this.limits, kind, context.switchToHttp().getRequest<LimitedRequest>());
    return true;
  }
}

/**
 * Counts an authorized request against the limits of its route's `kind`
 * (RateLimited): the per-user limit of the path's user and, for a
 * verification, a reserved failure of the caller and of the firm, settled by
 * the onResponse hook (installRateLimitHooks). Throws the 429 when a limit is
 * spent. Used by RateLimitGuard and by the login routes served outside Nest
 * (ADR 0020), after authorization: nobody can spend another user's budget.
 */
export async function countRequest(
  limits: EdgeRateLimits,
  kind: 'user' | 'verification',
  request: LimitedRequest,
): Promise<void> {
  const { firmId, userId } = (request.params ?? {}) as Record<string, string | undefined>;
  // Malformed ids get their 400 from IdPipe; they must not become counter keys.
  if (!request.principal || !isValidId(firmId) || !isValidId(userId)) return;
  await limits.countForUser(firmId, userId);
  if (kind === 'verification') {
    request.verificationReservation = await limits.reserveVerification(request.principal, firmId);
  }
}

/** Routes every caller may reach however many anonymous requests its address sent. */
const ADDRESS_LIMIT_EXEMPT_URLS = new Set(['/health']);

/**
 * A route's `config` flag with the same effect, for routes registered
 * elsewhere (the web pages' fixed files: servePageFiles).
 */
export const ADDRESS_LIMIT_EXEMPT = 'addressLimitExempt';

/**
 * The Fastify side of authentication and limits, registered before any route:
 *
 * - onRequest, after routing and before the body is read: verify the bearer
 *   token once (AuthGuard reuses the outcome), and count a request without a
 *   valid token against its address; over the limit it is answered 429 at
 *   once, its body unread (and then the connection closed). `/health` is exempt: a
 *   load balancer's probe must not be refused because of a flood from its
 *   address (it has no token, and it is cheap). So are the web pages' fixed
 *   files (route config ADDRESS_LIMIT_EXEMPT): a whole office opens /enroll
 *   from one address; their API calls carry tokens and are limited as usual.
 * - onResponse: settle a verification's reserved failures with the status
 *   that was sent (401 is a failed verification). A request whose client went
 *   away before an answer keeps its reservation: counted as a failure.
 */
export function installRateLimitHooks(
  fastify: FastifyInstance,
  verifier: TokenVerifier,
  limits: EdgeRateLimits,
): void {
  fastify.decorateRequest('authentication', null);
  fastify.decorateRequest('verificationReservation', null);
  fastify.addHook('onRequest', async (request: FastifyRequest, reply: FastifyReply) => {
    const authenticated = request as LimitedRequest;
    authenticated.authentication = verifier.authenticate(request.headers.authorization);
    if ('principal' in authenticated.authentication) return;
    if (ADDRESS_LIMIT_EXEMPT_URLS.has(request.routeOptions.url ?? '')) return;
    const config = request.routeOptions.config as unknown as Record<string, unknown> | undefined;
    if (config?.[ADDRESS_LIMIT_EXEMPT] === true) return;
    try {
      await limits.countAnonymous(request.ip);
    } catch (error) {
      if (!(error instanceof ProblemException)) throw error;
      // A body would never be read: close the connection rather than wait for it. Without
      // one the connection stays open, so that a flood is not also a flood of new connections.
      const { 'content-length': length, 'transfer-encoding': chunked } = request.headers;
      if ((length !== undefined && length !== '0') || chunked !== undefined) {
        reply.header('connection', 'close');
      }
      sendProblem(reply, error.problem, error.headers);
      return reply;
    }
  });
  fastify.addHook('onResponse', async (request: FastifyRequest, reply: FastifyReply) => {
    const reservation = (request as LimitedRequest).verificationReservation;
    // A 401 is a failed verification, but a replayed code is not a guess (problem.filter.ts).
    const guessed = reply.statusCode === 401 && !(request as LimitedRequest).notAGuess;
    if (reservation) await limits.settle(reservation, guessed);
  });
}
