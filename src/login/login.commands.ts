import { Inject } from '@nestjs/common';
import {
  Command,
  CommandHandler as HandlesCommand,
  ICommandHandler,
  IQueryHandler,
  Query,
  QueryHandler as HandlesQuery,
} from '@nestjs/cqrs';
import {
  generateAuthenticationOptions,
  verifyAuthenticationResponse,
  type AuthenticationResponseJSON,
  type PublicKeyCredentialRequestOptionsJSON,
} from '@simplewebauthn/server';
import { randomBytes } from 'node:crypto';
import { CommandEnvelope, CommandHandler } from '../command-handling/command-handler';
import { AppConfig, APP_CONFIG } from '../config/config';
import { TotpSecrets } from '../crypto/totp-secrets';
import { requireRegistered } from '../directory/user.decider';
import type { Factor } from '../enrollment/mfa.decider';
import { challengeOf, credentialsOf, userHandleOf } from '../enrollment/security-keys';
import { UserFacts } from '../enrollment/user-facts';
import { Clock, CLOCK } from '../shared/clock';
import { conflict, DomainError } from '../shared/domain-error';
import { streams } from '../shared/ids';
import { matchTotp } from '../verification/totp';
import {
  attemptsLeft,
  isLocked,
  lockedOut,
  VerificationContext,
  verificationDecider,
  VerificationState,
  WebAuthnOutcome,
} from '../verification/verification.decider';
import { VerificationHistory } from '../verification/verification-history';
import { LoginRequirement, loginRequirement } from './login.decision';

/*
 * Login (DESIGN §4): the decision, and the verification of a second factor.
 * Everything here reads a bounded amount of state: the user's stream and the
 * firm's two streams from the folded-state cache, the verification stream by
 * its last event. A user's thousandth login costs what its first did.
 */

/** A security-key login challenge is valid this long, and usable once. */
const CHALLENGE_TTL_MS = 5 * 60 * 1000;

type Verified = { verified: true; position: string };

/** GET .../login-requirement: verify, enroll, bypass or off. */
export class GetLoginRequirement extends Query<LoginRequirement> {
  constructor(
    readonly firmId: string,
    readonly userId: string,
  ) {
    super();
  }
}

/** POST .../totp/verify: a code from the user's authenticator app, accepted once. */
export class VerifyTotpCode extends Command<Verified> {
  constructor(
    readonly firmId: string,
    readonly userId: string,
    readonly code: string,
    readonly envelope: CommandEnvelope,
  ) {
    super();
  }
}

/** POST .../webauthn/authentication/options: a fresh challenge for the user's keys. */
export class IssueSecurityKeyChallenge extends Command<
  PublicKeyCredentialRequestOptionsJSON & { position: string }
> {
  constructor(
    readonly firmId: string,
    readonly userId: string,
    readonly envelope: CommandEnvelope,
  ) {
    super();
  }
}

/** POST .../webauthn/authentication/verify: the browser's assertion. */
export class VerifySecurityKeyAssertion extends Command<Verified> {
  constructor(
    readonly firmId: string,
    readonly userId: string,
    readonly response: AuthenticationResponseJSON,
    readonly envelope: CommandEnvelope,
  ) {
    super();
  }
}

@HandlesQuery(GetLoginRequirement)
export class GetLoginRequirementHandler implements IQueryHandler<GetLoginRequirement> {
  constructor(private readonly facts: UserFacts) {}

  async execute({ firmId, userId }: GetLoginRequirement): Promise<LoginRequirement> {
    const { user, subscription, enablement } = await this.facts.of(firmId, userId);
    return loginRequirement(user, subscription, enablement);
  }
}

/** What a verification decision needs besides the stream: the time, the generation, the budget. */
function contextFor(config: AppConfig, generation: number) {
  return (now: string): Promise<VerificationContext> =>
    Promise.resolve({ now, generation, lockout: config.totp.lockout });
}

@HandlesCommand(VerifyTotpCode)
export class VerifyTotpCodeHandler implements ICommandHandler<VerifyTotpCode> {
  constructor(
    private readonly commands: CommandHandler,
    private readonly facts: UserFacts,
    private readonly history: VerificationHistory,
    private readonly secrets: TotpSecrets,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(CLOCK) private readonly clock: Clock,
  ) {}

  async execute({ firmId, userId, code, envelope }: VerifyTotpCode): Promise<Verified> {
    const user = requireRegistered((await this.facts.of(firmId, userId)).user, userId);
    const factors = [...user.mfa.factors.values()].filter((factor) => factor.factorType === 'totp');
    if (factors.length === 0) {
      throw conflict('factor-not-enrolled', 'The user has no confirmed authenticator app.');
    }
    const now = this.clock.now();
    // Refused early while locked: no key is fetched and no secret opened for a locked user.
    const before = await this.history.stateOf(firmId, userId, user.mfa.generation);
    if (isLocked(before, now.toISOString())) {
      throw lockedOut(before, now.toISOString());
    }
    let match: { factorId: string; timeStep: number } | null = null;
    for (const factor of factors) {
      if (!factor.secret) continue;
      const secret = await this.secrets.open(firmId, userId, factor.enrollmentId, factor.secret);
      const timeStep = matchTotp(secret, code, now);
      if (timeStep !== null) {
        match = { factorId: factor.factorId, timeStep };
        break;
      }
    }
    // The code that confirmed a factor is spent: a code of that step or earlier is a replay.
    const confirmedSteps = factors.flatMap((factor) =>
      factor.acceptedStep === undefined ? [] : [factor.acceptedStep],
    );
    const outcome = await this.commands.handle(
      streams.verification(firmId, userId),
      verificationDecider,
      {
        type: 'RecordTotpAttempt',
        match,
        spentStep: confirmedSteps.length > 0 ? Math.max(...confirmedSteps) : null,
      },
      envelope,
      contextFor(this.config, user.mfa.generation),
    );
    const [first] = outcome.events;
    if (first?.type === 'TotpVerificationSucceeded') {
      return { verified: true, position: String(outcome.position) };
    }
    const state = outcome.state;
    const replayed =
      first?.type === 'TotpVerificationFailed' &&
      (first.data as { reason: string }).reason === 'replayed-code';
    const detail = replayed
      ? 'This code was already used; wait for the next one.'
      : 'The code is not valid.';
    throw new DomainError(
      replayed ? 'code-already-used' : 'invalid-code',
      state.blocked
        ? `${detail} Too many failures in a row: TOTP verification is locked until a firm admin resets the enrollment or the user logs in with a security key.`
        : state.lockedUntil
          ? `${detail} Too many failures in a row: TOTP verification is locked until ${state.lockedUntil}.`
          : detail,
      'unauthorized',
      {
        verified: false,
        attemptsLeft:
          state.lockedUntil || state.blocked
            ? 0
            : attemptsLeft(state.consecutiveFailures, this.config.totp.lockout),
        ...(state.lockedUntil ? { lockedUntil: state.lockedUntil } : {}),
        ...(state.blocked ? { blocked: true } : {}),
        position: String(outcome.position),
      },
    );
  }
}

@HandlesCommand(IssueSecurityKeyChallenge)
export class IssueSecurityKeyChallengeHandler implements ICommandHandler<IssueSecurityKeyChallenge> {
  constructor(
    private readonly commands: CommandHandler,
    private readonly facts: UserFacts,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(CLOCK) private readonly clock: Clock,
  ) {}

  async execute({ firmId, userId, envelope }: IssueSecurityKeyChallenge) {
    const user = requireRegistered((await this.facts.of(firmId, userId)).user, userId);
    const credentials = credentialsOf(user.mfa.factors.values());
    if (credentials.length === 0) {
      throw conflict('factor-not-enrolled', 'The user has no registered security key.');
    }
    const options = await generateAuthenticationOptions({
      rpID: this.config.webauthn.rpId,
      challenge: randomBytes(32),
      timeout: CHALLENGE_TTL_MS,
      userVerification: 'preferred',
      allowCredentials: credentials.map((credential) => ({
        id: credential.credentialId,
        transports: credential.transports as never,
      })),
    });
    const outcome = await this.commands.handle(
      streams.verification(firmId, userId),
      verificationDecider,
      {
        type: 'IssueWebAuthnChallenge',
        challenge: options.challenge,
        expiresAt: new Date(this.clock.now().getTime() + CHALLENGE_TTL_MS).toISOString(),
      },
      envelope,
      contextFor(this.config, user.mfa.generation),
    );
    return { ...options, position: String(outcome.position) };
  }
}

@HandlesCommand(VerifySecurityKeyAssertion)
export class VerifySecurityKeyAssertionHandler implements ICommandHandler<VerifySecurityKeyAssertion> {
  constructor(
    private readonly commands: CommandHandler,
    private readonly facts: UserFacts,
    private readonly history: VerificationHistory,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  async execute({
    firmId,
    userId,
    response,
    envelope,
  }: VerifySecurityKeyAssertion): Promise<Verified> {
    const challenge = challengeOf(response.response.clientDataJSON);
    const user = requireRegistered((await this.facts.of(firmId, userId)).user, userId);
    const factor = [...user.mfa.factors.values()].find(
      (candidate) => candidate.credential?.credentialId === response.id,
    );
    const state = await this.history.stateOf(firmId, userId, user.mfa.generation);
    const outcome = await this.check(firmId, userId, response, challenge, factor, state);
    const recorded = await this.commands.handle(
      streams.verification(firmId, userId),
      verificationDecider,
      { type: 'RecordWebAuthnAttempt', challenge, outcome },
      envelope,
      contextFor(this.config, user.mfa.generation),
    );
    const [event] = recorded.events;
    if (event?.type === 'WebAuthnVerificationSucceeded') {
      return { verified: true, position: String(recorded.position) };
    }
    const reason = event ? (event.data as { reason: string }).reason : 'not-verified';
    throw new DomainError(
      'webauthn-not-verified',
      `The security key's assertion was refused (${reason}).`,
      'unauthorized',
      { verified: false, reason, position: String(recorded.position) },
    );
  }

  private async check(
    firmId: string,
    userId: string,
    response: AuthenticationResponseJSON,
    challenge: string,
    factor: Factor | undefined,
    state: VerificationState,
  ): Promise<WebAuthnOutcome> {
    const credentialId = typeof response.id === 'string' ? response.id : null;
    // A key registered to someone else (or to nobody) proves nothing for this user.
    const credential = factor?.credential;
    if (!factor || !credential) {
      return { verified: false, reason: 'credential-not-registered-for-user', credentialId };
    }
    // The authenticator's record of whom the key was made for must be this user.
    const { userHandle } = response.response;
    if (
      userHandle !== undefined &&
      userHandle !== null &&
      userHandle !== Buffer.from(userHandleOf(firmId, userId)).toString('base64url')
    ) {
      return { verified: false, reason: 'user-handle-mismatch', credentialId };
    }
    try {
      const result = await verifyAuthenticationResponse({
        response,
        expectedChallenge: challenge,
        expectedOrigin: this.config.webauthn.origin,
        expectedRPID: this.config.webauthn.rpId,
        requireUserVerification: false,
        credential: {
          id: credential.credentialId,
          publicKey: Buffer.from(credential.publicKey, 'base64url'),
          counter: state.counters[credential.credentialId] ?? credential.counter,
          transports: credential.transports as never,
        },
      });
      if (!result.verified) return { verified: false, reason: 'signature-invalid', credentialId };
      return {
        verified: true,
        factorId: factor.factorId,
        credentialId: credential.credentialId,
        counter: result.authenticationInfo.newCounter,
      };
    } catch (error) {
      const message = error instanceof Error ? error.message : 'invalid assertion';
      return { verified: false, reason: message.slice(0, 200), credentialId };
    }
  }
}
