import { Inject } from '@nestjs/common';
import { Command, CommandHandler as HandlesCommand, ICommandHandler } from '@nestjs/cqrs';
import {
  generateRegistrationOptions,
  verifyRegistrationResponse,
  type PublicKeyCredentialCreationOptionsJSON,
  type RegistrationResponseJSON,
} from '@simplewebauthn/server';
import { randomBytes } from 'node:crypto';
import { CommandEnvelope, CommandHandler } from '../command-handling/command-handler';
import { AppConfig, APP_CONFIG } from '../config/config';
import { RegisteredUser, requireRegistered, userDecider } from '../directory/user.decider';
import { EVENT_STORE, EventStore } from '../event-store/event-store.port';
import { Clock, CLOCK } from '../shared/clock';
import { deterministicId } from '../shared/deterministic-id';
import { conflict, DomainError } from '../shared/domain-error';
import { streams } from '../shared/ids';
import { admitAuthenticator } from './attestation-policy';
import { enrollmentLimits, ENROLLMENT_TTL_MS, stillPending } from './enrollment-rules';
import { FactorConfirmation } from './factor-confirmation';
import {
  enrollmentNotFound,
  factorIdOf,
  requireNotExpired,
  WebAuthnCredential,
} from './mfa.decider';
import {
  challengeOf,
  credentialsOf,
  SUPPORTED_ALGORITHMS,
  userHandleOf,
  WEBAUTHN_TIMEOUT_MS,
} from './security-keys';
import { eligibilityOf } from './eligibility.decision';
import { UserFacts } from './user-facts';

export type RegistrationOptions = PublicKeyCredentialCreationOptionsJSON & {
  position: string;
  enrollmentId: string;
};

/** POST .../webauthn/registration/options: a challenge for a new security key (DESIGN §2.4). */
export class StartSecurityKeyRegistration extends Command<RegistrationOptions> {
  constructor(
    readonly firmId: string,
    readonly userId: string,
    readonly label: string | undefined,
    readonly envelope: CommandEnvelope,
  ) {
    super();
  }
}

/** POST .../webauthn/registration/verify: the browser's attestation; the factor and its seat. */
export class VerifySecurityKeyRegistration extends Command<{ position: string; factorId: string }> {
  constructor(
    readonly firmId: string,
    readonly userId: string,
    readonly response: RegistrationResponseJSON,
    readonly envelope: CommandEnvelope,
  ) {
    super();
  }
}

@HandlesCommand(StartSecurityKeyRegistration)
export class StartSecurityKeyRegistrationHandler implements ICommandHandler<StartSecurityKeyRegistration> {
  constructor(
    private readonly commands: CommandHandler,
    private readonly facts: UserFacts,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(CLOCK) private readonly clock: Clock,
  ) {}

  async execute({ firmId, userId, label, envelope }: StartSecurityKeyRegistration) {
    const facts = await this.facts.of(firmId, userId);
    const user = requireRegistered(facts.user, userId);
    const enrollmentId = deterministicId('enrollment', envelope.commandId);
    const outcome = await this.commands.handle(
      streams.user(firmId, userId),
      userDecider,
      {
        type: 'StartWebAuthnRegistration',
        userId,
        enrollmentId,
        label: label ?? 'Security key',
        generation: user.mfa.generation,
        challenge: randomBytes(32).toString('base64url'),
        expiresAt: new Date(this.clock.now().getTime() + ENROLLMENT_TTL_MS).toISOString(),
        eligibility: eligibilityOf(facts, userId),
        limits: enrollmentLimits(this.config),
      },
      envelope,
    );
    const state = outcome.state as RegisteredUser;
    const pending = stillPending(state, enrollmentId, this.clock.now().toISOString());
    if (!pending.challenge) throw enrollmentNotFound(enrollmentId);
    const options = await generateRegistrationOptions({
      rpName: this.config.webauthn.rpName,
      rpID: this.config.webauthn.rpId,
      userName: user.profile.email,
      userDisplayName: user.profile.name,
      userID: userHandleOf(firmId, userId),
      challenge: Buffer.from(pending.challenge, 'base64url'),
      timeout: WEBAUTHN_TIMEOUT_MS,
      attestationType: this.config.webauthn.attestation.conveyance,
      excludeCredentials: credentialsOf(state.mfa.factors.values()).map((credential) => ({
        id: credential.credentialId,
        transports: credential.transports,
      })),
      authenticatorSelection: { residentKey: 'preferred', userVerification: 'preferred' },
      supportedAlgorithmIDs: SUPPORTED_ALGORITHMS,
    });
    return { ...options, position: String(outcome.position), enrollmentId };
  }
}

/**
 * Verifies the attestation, then confirms the key, takes the seat and claims
 * the credential for this user in one append: a refusal (no seat, a key
 * registered to someone else, an authenticator the policy does not allow)
 * appends nothing.
 */
@HandlesCommand(VerifySecurityKeyRegistration)
export class VerifySecurityKeyRegistrationHandler implements ICommandHandler<VerifySecurityKeyRegistration> {
  constructor(
    private readonly commands: CommandHandler,
    private readonly facts: UserFacts,
    private readonly confirmation: FactorConfirmation,
    @Inject(EVENT_STORE) private readonly store: EventStore,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(CLOCK) private readonly clock: Clock,
  ) {}

  async execute({ firmId, userId, response, envelope }: VerifySecurityKeyRegistration) {
    // A retry of a registration that ran answers as it did, before the challenge is looked
    // for among pending enrollments a reset or deactivation may have removed since.
    const earlier = await this.commands.earlierOutcome(
      [
        streams.securityKey(firmId, response.id),
        streams.subscription(firmId),
        streams.user(firmId, userId),
      ],
      envelope,
    );
    const confirmedThen = earlier?.events.find((event) => event.type === 'FactorConfirmed');
    if (earlier && confirmedThen) {
      return { position: String(earlier.position), factorId: String(confirmedThen.data.factorId) };
    }
    const challenge = challengeOf(response.response.clientDataJSON);
    const facts = await this.facts.of(firmId, userId);
    const user = requireRegistered(facts.user, userId);
    const pending = [...user.mfa.pending.values()].find(
      (enrollment) => enrollment.challenge === challenge,
    );
    if (!pending) {
      throw conflict(
        'challenge-not-pending',
        'This registration challenge is unknown, expired or already used; ask for new options.',
      );
    }
    // On a store without atomic appends a verified key is recorded before its seat, and a
    // confirmation interrupted after that may be sent again: it finishes.
    const resuming = pending.verifiedCredential?.credentialId === response.id;
    if (pending.verifiedCredential && !resuming) {
      throw conflict('challenge-already-used', 'This registration challenge was already used.');
    }
    requireNotExpired(pending, this.clock.now().toISOString());
    const credential = await this.verifyAttestation(response, challenge);
    const generation = user.mfa.generation;
    if (!resuming && (await this.store.multiStreamAtomicity()) === 'sequential') {
      await this.commands.handle(
        streams.user(firmId, userId),
        userDecider,
        {
          type: 'RecordWebAuthnRegistration',
          userId,
          enrollmentId: pending.enrollmentId,
          generation,
          credential,
        },
        // Its own command id: the confirmation appends to the same stream next.
        { ...envelope, commandId: deterministicId('webauthn-registration', envelope.commandId) },
      );
    }
    const outcome = await this.confirmation.confirm(
      firmId,
      { userId, enrollmentId: pending.enrollmentId, generation, credential },
      envelope,
    );
    return { position: String(outcome.position), factorId: factorIdOf(pending.enrollmentId) };
  }

  private async verifyAttestation(
    response: RegistrationResponseJSON,
    challenge: string,
  ): Promise<WebAuthnCredential> {
    let verification: Awaited<ReturnType<typeof verifyRegistrationResponse>>;
    try {
      verification = await verifyRegistrationResponse({
        response,
        expectedChallenge: challenge,
        expectedOrigin: this.config.webauthn.origin,
        expectedRPID: this.config.webauthn.rpId,
        requireUserVerification: false,
        supportedAlgorithmIDs: SUPPORTED_ALGORITHMS,
      });
    } catch (error) {
      throw registrationRefused(error);
    }
    if (!verification.verified) throw registrationRefused(undefined);
    // The deployment's attestation policy (WEBAUTHN_ATTESTATION): refused before anything is appended.
    await admitAuthenticator(this.config.webauthn.attestation, verification.registrationInfo);
    const info = verification.registrationInfo;
    return {
      credentialId: info.credential.id,
      publicKey: Buffer.from(info.credential.publicKey).toString('base64url'),
      counter: info.credential.counter,
      transports: info.credential.transports ?? response.response.transports ?? [],
      aaguid: info.aaguid,
      attestationFormat: info.fmt,
      backedUp: info.credentialBackedUp,
    };
  }
}

function registrationRefused(error: unknown): DomainError {
  const why = error instanceof Error ? `: ${error.message}` : '';
  return new DomainError(
    'registration-not-verified',
    `The security key's registration could not be verified${why}`.slice(0, 300),
    'invalid',
  );
}
