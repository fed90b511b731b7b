import {
  applyDecorators,
  CanActivate,
  ExecutionContext,
  Inject,
  Injectable,
  SetMetadata,
} from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { ApiExtension } from '@nestjs/swagger';
import type { FastifyRequest } from 'fastify';
import jwt from 'jsonwebtoken';
import { createPublicKey, createSecretKey } from 'node:crypto';
import { APP_CONFIG } from '../config/config';
import type { AppConfig } from '../config/config';
import { isValidId } from '../shared/ids';
import { problem, ProblemException } from './problem';

export const TOKEN_ROLES = ['operator', 'superuser', 'host', 'user', 'auditor'] as const;
export type TokenRole = (typeof TOKEN_ROLES)[number];

/** The authenticated caller, from the token's claims. */
export interface Principal {
  id: string;
  role: TokenRole;
  /** When present, the token only reaches this firm. */
  firm: string | null;
}

const PUBLIC = 'mfa:public';
const ROLES = 'mfa:roles';

/**
 * Opt a route out of authentication (health). A public route still reads a
 * token when one is sent, so it may answer more to some roles; a token that is
 * sent must be valid (401 otherwise), never silently ignored.
 */
export const Public = () => SetMetadata(PUBLIC, true);
/** The roles that may call a route. Every non-public route must say. */
export const Roles = (...roles: TokenRole[]) =>
  applyDecorators(SetMetadata(ROLES, roles), ApiExtension('x-roles', roles));

const unauthorized = (detail: string) =>
  new ProblemException(problem(401, 'unauthorized', detail), {
    'www-authenticate': 'Bearer realm="mfa"',
  });
const forbidden = (detail: string) => new ProblemException(problem(403, 'forbidden', detail));

/** What the edge found in a request's Authorization header, once per request. */
export type Authentication = { principal: Principal } | { refusal: ProblemException };

/** Seconds of clock skew allowed between the token's issuer and this service (exp, nbf, iat). */
export const CLOCK_TOLERANCE_SECONDS = 5;

/** A compact JWS (RFC 7515 §7.1): three base64url parts, the signature possibly empty. */
const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

/** How many verified tokens TokenVerifier keeps (the oldest out first). */
const MAX_VERIFIED_TOKENS = 10_000;

interface VerifiedToken {
  principal: Principal;
  /** Unix seconds: accepted again while validFrom <= now < validUntil. */
  validFrom: number;
  validUntil: number;
}

/**
 * Verifies bearer tokens (API.md "Auth"): HS256 with the secret or RS256 with
 * the public key, `exp` required, `nbf` and `iat` numbers when present, `iat`
 * not in the future and, with `MFA_JWT_MAX_AGE`, not older than that. All
 * times allow CLOCK_TOLERANCE_SECONDS of skew. A token that fails any check
 * is refused with a 401 that does not say which check failed beyond expiry.
 */
export class TokenVerifier {
  private readonly verifyKey: jwt.Secret;
  private readonly algorithms: jwt.Algorithm[];
  private readonly maxAgeSeconds: number | null;
  /**
   * Tokens verified before, by their exact text: the principal, and the
   * seconds within which every time check passes again. The same bearer comes
   * back at each request of a session; its signature is checked once.
   */
  private readonly verified = new Map<string, VerifiedToken>();

  constructor(config: AppConfig) {
    // Key objects built once: given a string, jsonwebtoken tries to parse it as a PEM key on
    // every request before using it, which was half the CPU of a login decision.
    this.verifyKey =
      config.jwt.algorithm === 'HS256'
        ? createSecretKey(config.jwt.secret)
        : createPublicKey(config.jwt.publicKey);
    this.algorithms = [config.jwt.algorithm];
    this.maxAgeSeconds = config.jwtMaxAgeSeconds;
  }

  /** The principal of an `Authorization: Bearer <JWT>` header, or the 401 to answer. */
  authenticate(header: string | undefined): Authentication {
    try {
      return { principal: this.principalOf(header) };
    } catch (error) {
      if (error instanceof ProblemException) return { refusal: error };
      throw error;
    }
  }

  private principalOf(header: string | undefined): Principal {
    // RFC 6750 §2.1: `Bearer 1*SP token`, the scheme case-insensitive (RFC 9110 §11.1). No
    // header, another scheme or no token: one is required. A token that is sent but is not
    // JWT-shaped is invalid, as any token that fails a check below (RFC 6750 §3.1).
    const token = /^Bearer(?: +(.*))?$/i.exec(header ?? '')?.[1];
    if (!token) throw unauthorized('A bearer token is required.');
    if (!JWT_SHAPE.test(token)) throw unauthorized('The token is not valid.');
    // jsonwebtoken's clock: whole seconds. Outside the window, the full check below answers.
    const clock = Math.floor(Date.now() / 1000);
    const known = this.verified.get(token);
    if (known && clock >= known.validFrom && clock < known.validUntil) return known.principal;
    const principal = this.verify(token);
    this.remember(token, principal, clock);
    return principal;
  }

  /**
   * The seconds in which jsonwebtoken and the checks below accept this token
   * again: from nbf (less the skew), until exp and, with a maximum age, until
   * iat + that age (plus the skew, exclusive). An iat accepted once stays
   * accepted as time goes on. Read from the verified payload itself.
   */
  private remember(token: string, principal: Principal, clock: number): void {
    const claims = jwt.decode(token, { json: true });
    if (!claims || typeof claims.exp !== 'number') return;
    let validUntil = claims.exp + CLOCK_TOLERANCE_SECONDS;
    if (this.maxAgeSeconds !== null) {
      if (typeof claims.iat !== 'number') return;
      validUntil = Math.min(validUntil, claims.iat + this.maxAgeSeconds + CLOCK_TOLERANCE_SECONDS);
    }
    const validFrom =
      typeof claims.nbf === 'number' ? claims.nbf - CLOCK_TOLERANCE_SECONDS : -Infinity;
    if (!(clock >= validFrom && clock < validUntil)) return;
    this.verified.delete(token);
    // Shared by every request carrying this token: frozen.
    this.verified.set(token, { principal: Object.freeze(principal), validFrom, validUntil });
    if (this.verified.size > MAX_VERIFIED_TOKENS) {
      this.verified.delete(this.verified.keys().next().value as string);
    }
  }

  private verify(token: string): Principal {
    let claims: jwt.JwtPayload;
    try {
      const decoded = jwt.verify(token, this.verifyKey, {
        algorithms: this.algorithms,
        clockTolerance: CLOCK_TOLERANCE_SECONDS,
        // jsonwebtoken measures the age from iat (and requires it) when maxAge is set.
        ...(this.maxAgeSeconds !== null ? { maxAge: this.maxAgeSeconds } : {}),
      });
      if (typeof decoded === 'string') throw new Error('not a JSON payload');
      claims = decoded;
    } catch (error) {
      const expired = error instanceof jwt.TokenExpiredError;
      throw unauthorized(expired ? 'The token has expired.' : 'The token is not valid.');
    }
    if (typeof claims.exp !== 'number') throw unauthorized('The token must expire (exp claim).');
    // jsonwebtoken only looks at iat when maxAge is set: a string or an iat from the future
    // would otherwise pass and make any later age rule meaningless (RFC 7519 §4.1.6: a NumericDate).
    const iat = claims.iat as unknown;
    if (iat !== undefined) {
      if (typeof iat !== 'number' || !Number.isFinite(iat)) {
        throw unauthorized('The token is not valid.');
      }
      if (iat > Date.now() / 1000 + CLOCK_TOLERANCE_SECONDS) {
        throw unauthorized('The token is not valid.');
      }
    }
    const role = claims.role as unknown;
    if (typeof role !== 'string' || !(TOKEN_ROLES as readonly string[]).includes(role)) {
      throw unauthorized('The token has no valid role claim.');
    }
    if (!isValidId(claims.sub)) throw unauthorized('The token has no valid sub claim.');
    const firm = claims.firm as unknown;
    if (firm !== undefined && !isValidId(firm)) throw unauthorized('The firm claim is not valid.');
    if ((role === 'superuser' || role === 'user') && firm === undefined) {
      throw unauthorized(`A ${role} token must name its firm.`);
    }
    return { id: claims.sub, role: role as TokenRole, firm: (firm as string | undefined) ?? null };
  }
}

/** A request as the edge leaves it: authenticated once, in Fastify's onRequest hook. */
export type AuthenticatedRequest = FastifyRequest & {
  authentication?: Authentication | null;
  principal?: Principal;
};

/**
 * Global guard: every route needs a valid bearer token unless marked @Public.
 * Authorization is checked here too, in one place: the role must be one the
 * route lists, a firm-bound token only reaches its firm, and a `user` only
 * acts on itself. A route without @Roles is closed to everyone, so a
 * forgotten decorator fails safe.
 */
@Injectable()
export class AuthGuard implements CanActivate {
  private readonly verifier: TokenVerifier;

  constructor(
    private readonly reflector: Reflector,
    @Inject(APP_CONFIG) config: AppConfig,
  ) {
    this.verifier = new TokenVerifier(config);
  }

  canActivate(context: ExecutionContext): boolean {
    const targets = [context.getHandler(), context.getClass()];
    const request = context.switchToHttp().getRequest<AuthenticatedRequest>();
    if (this.reflector.getAllAndOverride<boolean>(PUBLIC, targets)) {
      // A public route still reads a token when one is sent (it may answer more to some
      // roles), and a token that is sent must be valid: never silently ignored.
      if (request.headers.authorization !== undefined) {
        const sent =
          request.authentication ?? this.verifier.authenticate(request.headers.authorization);
        if ('refusal' in sent) throw sent.refusal;
        request.principal = sent.principal;
      }
      return true;
    }
    // The edge's onRequest hook has already verified the token (for the per-address limit).
    const authentication =
      request.authentication ?? this.verifier.authenticate(request.headers.authorization);
    const roles = this.reflector.getAllAndOverride<TokenRole[] | undefined>(ROLES, targets) ?? [];
    authorize(request, authentication, roles);
    return true;
  }
}

/**
 * Authorization of a route that is not @Public, the one rule every route
 * shares (AuthGuard, and the login routes served outside Nest: ADR 0020):
 * the token must be valid (401 with `WWW-Authenticate`), its role one of
 * `roles`, a firm-bound token only reaches the path's firm, and a `user` only
 * acts on itself (403). Sets `request.principal` and returns it; throws the
 * ProblemException to answer otherwise. Checked before the path's ids are
 * validated, as Nest runs guards before pipes.
 */
export function authorize(
  request: AuthenticatedRequest,
  authentication: Authentication,
  roles: readonly TokenRole[],
): Principal {
  if ('refusal' in authentication) throw authentication.refusal;
  const { principal } = authentication;
  request.principal = principal;
  if (!roles.includes(principal.role)) {
    throw forbidden(`The role ${principal.role} may not call this endpoint.`);
  }
  const params = (request.params ?? {}) as Record<string, string | undefined>;
  if (params.firmId !== undefined && principal.firm !== null && principal.firm !== params.firmId) {
    throw forbidden('This token does not reach that firm.');
  }
  if (principal.role === 'user' && params.userId !== undefined && params.userId !== principal.id) {
    throw forbidden('A user may only act on itself.');
  }
  return principal;
}
