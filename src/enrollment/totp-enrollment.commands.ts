import { Inject } from '@nestjs/common';
import { Command, CommandHandler as HandlesCommand, ICommandHandler } from '@nestjs/cqrs';
import QRCode from 'qrcode';
import { CommandEnvelope, CommandHandler } from '../command-handling/command-handler';
import { AppConfig, APP_CONFIG } from '../config/config';
import { TotpSecrets } from '../crypto/totp-secrets';
import type { SealedSecret } from '../crypto/secret-box';
import { RegisteredUser, requireRegistered, userDecider } from '../directory/user.decider';
import { Clock, CLOCK } from '../shared/clock';
import { deterministicId } from '../shared/deterministic-id';
import { DomainError } from '../shared/domain-error';
import { streams } from '../shared/ids';
import { matchTotp } from '../verification/totp';
import { FactorConfirmation } from './factor-confirmation';
import { enrollmentNotFound, factorIdOf, requireNotExpired } from './mfa.decider';
import { enrollmentLimits, ENROLLMENT_TTL_MS, stillPending } from './enrollment-rules';
import { eligibilityOf } from './eligibility.decision';
import { totpKeyUri } from './totp-key-uri';
import { UserFacts } from './user-facts';

export interface TotpEnrollmentAnswer {
  position: string;
  enrollmentId: string;
  otpauthUri: string;
  qrCodeSvg: string;
  expiresAt: string;
}

/** POST .../mfa/totp/enrollment: a new secret, sealed, for an authenticator app (DESIGN §2.4). */
export class StartTotpEnrollment extends Command<TotpEnrollmentAnswer> {
  constructor(
    readonly firmId: string,
    readonly userId: string,
    readonly label: string | undefined,
    readonly envelope: CommandEnvelope,
  ) {
    super();
  }
}

/** POST .../totp/enrollment/{id}/confirm: the app's code proves it; the factor and its seat. */
export class ConfirmTotpEnrollment extends Command<{ position: string; factorId: string }> {
  constructor(
    readonly firmId: string,
    readonly userId: string,
    readonly enrollmentId: string,
    readonly code: string,
    readonly envelope: CommandEnvelope,
  ) {
    super();
  }
}

@HandlesCommand(StartTotpEnrollment)
export class StartTotpEnrollmentHandler implements ICommandHandler<StartTotpEnrollment> {
  constructor(
    private readonly commands: CommandHandler,
    private readonly facts: UserFacts,
    private readonly secrets: TotpSecrets,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(CLOCK) private readonly clock: Clock,
  ) {}

  async execute({ firmId, userId, label, envelope }: StartTotpEnrollment) {
    const facts = await this.facts.of(firmId, userId);
    const user = requireRegistered(facts.user, userId);
    // Derived from the command id: a retried start finds its enrollment and answers it again.
    const enrollmentId = deterministicId('enrollment', envelope.commandId);
    const { generation } = user.mfa;
    const now = this.clock.now();
    const outcome = await this.commands.handle(
      streams.user(firmId, userId),
      userDecider,
      {
        type: 'StartTotpEnrollment',
        userId,
        enrollmentId,
        label: label ?? 'Authenticator app',
        generation,
        secret: await this.secrets.newSealed(firmId, userId, generation, enrollmentId),
        expiresAt: new Date(now.getTime() + ENROLLMENT_TTL_MS).toISOString(),
        eligibility: eligibilityOf(facts, userId),
        limits: enrollmentLimits(this.config),
      },
      envelope,
    );
    const pending = stillPending(
      outcome.state as RegisteredUser,
      enrollmentId,
      this.clock.now().toISOString(),
    );
    if (!pending.secret) throw enrollmentNotFound(enrollmentId);
    const otpauthUri = totpKeyUri({
      issuer: this.config.webauthn.rpName,
      account: user.profile.email,
      secret: await this.secrets.open(firmId, userId, enrollmentId, pending.secret),
    });
    return {
      position: String(outcome.position),
      enrollmentId,
      otpauthUri,
      qrCodeSvg: await QRCode.toString(otpauthUri, { type: 'svg', errorCorrectionLevel: 'M' }),
      expiresAt: pending.expiresAt,
    };
  }
}

/**
 * The code is checked before anything else, also for an enrollment already
 * confirmed: a retried confirmation answers the first answer only to the
 * holder of the app (a wrong code is 400 invalid-code, as it would have been
 * the first time).
 */
@HandlesCommand(ConfirmTotpEnrollment)
export class ConfirmTotpEnrollmentHandler implements ICommandHandler<ConfirmTotpEnrollment> {
  constructor(
    private readonly commands: CommandHandler,
    private readonly facts: UserFacts,
    private readonly secrets: TotpSecrets,
    private readonly confirmation: FactorConfirmation,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(CLOCK) private readonly clock: Clock,
  ) {}

  async execute({ firmId, userId, enrollmentId, code, envelope }: ConfirmTotpEnrollment) {
    // A retry of a confirmation that ran answers as it did, before the code is checked
    // against an enrollment a reset or deactivation may have removed since.
    const earlier = await this.commands.earlierOutcome(
      [streams.subscription(firmId), streams.user(firmId, userId)],
      envelope,
    );
    const confirmedThen = earlier?.events.find(
      (event) => event.type === 'FactorConfirmed' && event.data.enrollmentId === enrollmentId,
    );
    if (earlier && confirmedThen) {
      return { position: String(earlier.position), factorId: String(confirmedThen.data.factorId) };
    }
    const facts = await this.facts.of(firmId, userId);
    const user = requireRegistered(facts.user, userId);
    const factorId = factorIdOf(enrollmentId);
    const confirmed = user.mfa.factors.get(factorId);
    if (confirmed) {
      if (!confirmed.secret) throw enrollmentNotFound(enrollmentId);
      await this.requireCode(firmId, userId, enrollmentId, confirmed.secret, code);
      const { lastPosition } = await this.commands.load(streams.user(firmId, userId), userDecider);
      return { position: String(lastPosition), factorId };
    }
    const pending = user.mfa.pending.get(enrollmentId);
    if (!pending || pending.factorType !== 'totp' || !pending.secret) {
      throw enrollmentNotFound(enrollmentId);
    }
    requireNotExpired(pending, this.clock.now().toISOString());
    const acceptedStep = await this.requireCode(firmId, userId, enrollmentId, pending.secret, code);
    const outcome = await this.confirmation.confirm(
      firmId,
      {
        userId,
        enrollmentId,
        generation: user.mfa.generation,
        acceptedStep,
        limits: enrollmentLimits(this.config),
      },
      envelope,
    );
    return { position: String(outcome.position), factorId };
  }

  /** The time step the code matches, or 400 invalid-code. */
  private async requireCode(
    firmId: string,
    userId: string,
    enrollmentId: string,
    sealed: SealedSecret,
    code: string,
  ): Promise<number> {
    const secret = await this.secrets.open(firmId, userId, enrollmentId, sealed);
    const step = matchTotp(secret, code, this.clock.now());
    if (step === null) {
      throw new DomainError(
        'invalid-code',
        'The code does not match the authenticator app; check the device time and try the current code.',
        'invalid',
        { errors: [{ field: 'code', message: 'does not match' }] },
      );
    }
    return step;
  }
}
