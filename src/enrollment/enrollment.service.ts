import { Inject, Injectable } from '@nestjs/common';
import {
  generateRegistrationOptions,
  verifyRegistrationResponse,
  type PublicKeyCredentialCreationOptionsJSON,
  type RegistrationResponseJSON,
} from '@simplewebauthn/server';
import { createHash, randomBytes } from 'node:crypto';
import { generateSecret, generateURI, verifySync } from 'otplib';
import QRCode from 'qrcode';
import { CommandEnvelope, CommandHandler } from '../command-handling/command-handler';
import { EVENT_STORE, EventStore } from '../event-store/event-store.port';
import { shredRetiredKeys } from '../crypto/crypto-shredding';
import { enablementDecider } from '../enablement/enablement.decider';
import { AppConfig } from '../config/config';
import { APP_CONFIG } from '../config/config.module';
import { KEY_STORE, KeyStore } from '../crypto/key-store.port';
import { open, seal, SealedSecret } from '../crypto/secret-box';
import {
  DeactivationReason,
  RegisteredUser,
  userDecider,
  UserState,
} from '../directory/user.decider';
import { Clock, CLOCK } from '../shared/clock';
import { deterministicId } from '../shared/deterministic-id';
import { conflict, DomainError, notFound } from '../shared/domain-error';
import { streams } from '../shared/ids';
import { subscriptionDecider } from '../subscription/subscription.decider';
import { admitAuthenticator } from './attestation-policy';
import { EnrollmentLimits, Factor, PendingEnrollment, WebAuthnCredential } from './mfa';
import {
  Confirmation,
  ConfirmationContext,
  decideConfirmation,
  decideDeactivation,
  decideReset,
} from './seats-and-factors';
import { factorIdOf } from './seat-keeper';
import { securityKeyClaimDecider } from './security-key-claim.decider';
import { eligibilityOf, UserFacts, UserFactsSnapshot } from './user-facts';

/** A started enrollment must be confirmed within this time. */
export const ENROLLMENT_TTL_MS = 10 * 60 * 1000;
/** The browser's own timeout for a security-key ceremony. */
const WEBAUTHN_TIMEOUT_MS = 5 * 60 * 1000;
/** ES256 and RS256: what security keys and platform authenticators sign with. */
export const SUPPORTED_ALGORITHMS = [-7, -257];

/** Where a TOTP secret belongs: a sealed secret copied to another user or enrollment does not open. */
export const secretAad = (firmId: string, userId: string, enrollmentId: string) =>
  `totp:${firmId}/${userId}/${enrollmentId}`;

export interface TotpEnrollmentAnswer {
  position: string;
  enrollmentId: string;
  otpauthUri: string;
  qrCodeSvg: string;
  expiresAt: string;
}

/**
 * Enrollment (DESIGN §2.4, §3): start and confirm a TOTP app or a security
 * key, reset or deactivate a user, list factors. Every change to a factor and
 * to the seat that goes with it is decided in seats-and-factors.ts over the
 * user's and the firm's streams together, and appended atomically (ADR 0013).
 */
@Injectable()
export class EnrollmentService {
  constructor(
    private readonly commands: CommandHandler,
    private readonly facts: UserFacts,
    @Inject(EVENT_STORE) private readonly store: EventStore,
    @Inject(KEY_STORE) private readonly keys: KeyStore,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(CLOCK) private readonly clock: Clock,
  ) {}

  async startTotp(
    firmId: string,
    userId: string,
    label: string | undefined,
    envelope: CommandEnvelope,
  ): Promise<TotpEnrollmentAnswer> {
    const facts = await this.facts.of(firmId, userId);
    const user = registered(facts, userId);
    // Derived from the command id: a retried start finds its enrollment and answers it again.
    const enrollmentId = deterministicId('enrollment', envelope.commandId);
    const { generation } = user.mfa;
    const dataKey = await this.keys.dataKeyFor(firmId, userId, generation);
    const secret = seal(
      dataKey.key,
      dataKey.keyId,
      Buffer.from(generateSecret(), 'utf8'),
      secretAad(firmId, userId, enrollmentId),
    );
    const outcome = await this.commands.handle(
      streams.user(firmId, userId),
      userDecider,
      {
        type: 'StartTotpEnrollment',
        userId,
        enrollmentId,
        label: label ?? 'Authenticator app',
        generation,
        secret,
        expiresAt: this.inFuture(ENROLLMENT_TTL_MS),
        eligibility: eligibilityOf(facts, userId),
        limits: this.limits(),
      },
      envelope,
    );
    const pending = this.stillPending(outcome.state as RegisteredUser, enrollmentId);
    if (!pending.secret) throw enrollmentNotFound(enrollmentId);
    const base32 = (await this.openSecret(firmId, userId, enrollmentId, pending.secret)).toString(
      'utf8',
    );
    const otpauthUri = generateURI({
      issuer: this.config.webauthn.rpName,
      label: user.profile.email,
      secret: base32,
    });
    return {
      position: String(outcome.position),
      enrollmentId,
      otpauthUri,
      qrCodeSvg: await QRCode.toString(otpauthUri, { type: 'svg', errorCorrectionLevel: 'M' }),
      expiresAt: pending.expiresAt,
    };
  }

  /**
   * The code is checked before anything else, also for an enrollment already
   * confirmed: a retried confirmation answers the first answer only to the
   * holder of the app (a wrong code is 400 invalid-code, as it would have
   * been the first time).
   */
  async confirmTotp(
    firmId: string,
    userId: string,
    enrollmentId: string,
    code: string,
    envelope: CommandEnvelope,
  ): Promise<{ position: string; factorId: string }> {
    const facts = await this.facts.of(firmId, userId);
    const user = registered(facts, userId);
    const factorId = factorIdOf(enrollmentId);
    const confirmed = user.mfa.factors.get(factorId);
    if (confirmed) {
      if (!confirmed.secret) throw enrollmentNotFound(enrollmentId);
      await this.requireCode(firmId, userId, enrollmentId, confirmed.secret, code);
      return { position: String(await this.lastPosition(firmId, userId)), factorId };
    }
    const pending = user.mfa.pending.get(enrollmentId);
    if (!pending || pending.factorType !== 'totp' || !pending.secret) {
      throw enrollmentNotFound(enrollmentId);
    }
    requireNotExpired(pending, this.clock.now().toISOString());
    const acceptedStep = await this.requireCode(firmId, userId, enrollmentId, pending.secret, code);
    const outcome = await this.confirm(
      firmId,
      {
        userId,
        enrollmentId,
        factorId,
        generation: user.mfa.generation,
        acceptedStep,
        limits: this.limits(),
      },
      envelope,
    );
    return { position: String(outcome.position), factorId };
  }

  async webAuthnRegistrationOptions(
    firmId: string,
    userId: string,
    label: string | undefined,
    envelope: CommandEnvelope,
  ): Promise<PublicKeyCredentialCreationOptionsJSON & { position: string; enrollmentId: string }> {
    const facts = await this.facts.of(firmId, userId);
    const user = registered(facts, userId);
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
        expiresAt: this.inFuture(ENROLLMENT_TTL_MS),
        eligibility: eligibilityOf(facts, userId),
        limits: this.limits(),
      },
      envelope,
    );
    const state = outcome.state as RegisteredUser;
    const pending = this.stillPending(state, enrollmentId);
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

  /**
   * Verifies the attestation, then confirms the key, takes the seat and
   * claims the credential for this user in one append: a refusal (no seat, a
   * key registered to someone else) appends nothing.
   */
  async webAuthnRegistrationVerify(
    firmId: string,
    userId: string,
    response: RegistrationResponseJSON,
    envelope: CommandEnvelope,
  ): Promise<{ position: string; factorId: string }> {
    const challenge = challengeOf(response.response.clientDataJSON);
    const facts = await this.facts.of(firmId, userId);
    const user = registered(facts, userId);
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
    const factorId = factorIdOf(pending.enrollmentId);
    const outcome = await this.confirm(
      firmId,
      { userId, enrollmentId: pending.enrollmentId, factorId, generation, credential },
      envelope,
    );
    return { position: String(outcome.position), factorId };
  }

  /** Every factor of the user stops working at once; the seat is freed and the old key destroyed. */
  async reset(
    firmId: string,
    userId: string,
    reason: string,
    envelope: CommandEnvelope,
  ): Promise<{ position: string; factorsRemoved: number }> {
    const outcome = await this.commands.handleAcross(
      // Factors first: on a store without atomic appends the seat keeper frees a seat left behind.
      this.userAndSeats(firmId, userId),
      (states, context) => decideReset(states, { userId, reason, trigger: 'superuser' }, context),
      envelope,
    );
    await this.shred(firmId, userId, outcome.states.user);
    const reset = outcome.events.user.find((event) => event.type === 'EnrollmentReset');
    return {
      position: String(outcome.position),
      factorsRemoved: reset?.type === 'EnrollmentReset' ? reset.data.factorIds.length : 0,
    };
  }

  /** Deactivation with recycling (DESIGN §2.7): reset and seat freed in the same append. */
  async deactivate(
    firmId: string,
    userId: string,
    reason: DeactivationReason,
    envelope: CommandEnvelope,
  ): Promise<{ position: bigint; state: UserState }> {
    const outcome = await this.commands.handleAcross(
      this.userAndSeats(firmId, userId),
      (states, context) => decideDeactivation(states, { userId, reason }, context),
      envelope,
    );
    await this.shred(firmId, userId, outcome.states.user);
    return { position: outcome.position, state: outcome.states.user };
  }

  async factors(firmId: string, userId: string, lastUsed: Record<string, string>) {
    const facts = await this.facts.of(firmId, userId);
    const user = registered(facts, userId);
    return [...user.mfa.factors.values()].map((factor) => ({
      factorId: factor.factorId,
      type: factor.factorType,
      label: factor.label,
      createdAt: factor.createdAt,
      lastUsedAt: lastUsed[factor.factorId] ?? null,
    }));
  }

  async openSecret(
    firmId: string,
    userId: string,
    enrollmentId: string,
    sealed: SealedSecret,
  ): Promise<Buffer> {
    const key = await this.keys.dataKey(sealed.keyId);
    // The key went with a reset: whatever was sealed with it is gone for good.
    if (!key) throw enrollmentNotFound(enrollmentId);
    return open(key, sealed, secretAad(firmId, userId, enrollmentId));
  }

  /**
   * The confirmation, the seat and (for a security key) the key's claim, in
   * one append. The order of the parts is the order of the appends on a store
   * without atomic ones: the claim and the seat, which can be refused, before
   * the factor; a crash between them leaves a seat the seat keeper completes
   * or frees.
   */
  private confirm(firmId: string, confirmation: Confirmation, envelope: CommandEnvelope) {
    const { userId, credential } = confirmation;
    const seatsAndFactor = this.userAndSeats(firmId, userId, 'seat-first');
    const context = async (now: string) => ({
      now,
      enablement: (await this.commands.load(streams.enablement(firmId), enablementDecider)).state,
      ownerStillHolds: credential ? await this.ownerStillHolds(firmId, userId, credential) : false,
    });
    if (!credential) {
      return this.commands.handleAcross(
        seatsAndFactor,
        (states, ctx: ConfirmationContext) => decideConfirmation(states, confirmation, ctx),
        envelope,
        context,
      );
    }
    return this.commands.handleAcross(
      {
        claim: {
          streamId: streams.securityKey(firmId, credential.credentialId),
          decider: securityKeyClaimDecider,
        },
        ...seatsAndFactor,
      },
      (states, ctx: ConfirmationContext & { ownerStillHolds: boolean }) => {
        const decided = decideConfirmation(states, confirmation, ctx);
        if (!decided.user?.length) return decided;
        const claim = securityKeyClaimDecider.decide(
          {
            type: 'ClaimSecurityKey',
            credentialId: credential.credentialId,
            claimant: {
              userId,
              generation: confirmation.generation,
              factorId: confirmation.factorId,
            },
            ownerStillHolds: ctx.ownerStillHolds,
          },
          states.claim,
          ctx,
        );
        return { ...decided, claim };
      },
      envelope,
      context,
    );
  }

  /** Whether another user of the firm has this key among its factors now. */
  private async ownerStillHolds(
    firmId: string,
    userId: string,
    credential: WebAuthnCredential,
  ): Promise<boolean> {
    const { state } = await this.commands.load(
      streams.securityKey(firmId, credential.credentialId),
      securityKeyClaimDecider,
    );
    const owner = state.owner;
    if (!owner || owner.userId === userId) return false;
    const { state: ownerState } = await this.commands.load(
      streams.user(firmId, owner.userId),
      userDecider,
    );
    return (
      ownerState.status !== 'unregistered' &&
      ownerState.mfa.generation === owner.generation &&
      ownerState.mfa.factors.has(owner.factorId)
    );
  }

  private userAndSeats(
    firmId: string,
    userId: string,
    order: 'factor-first' | 'seat-first' = 'factor-first',
  ) {
    const user = { streamId: streams.user(firmId, userId), decider: userDecider };
    const subscription = {
      streamId: streams.subscription(firmId),
      decider: subscriptionDecider,
    };
    return order === 'seat-first' ? { subscription, user } : { user, subscription };
  }

  /** Crypto-shredding of every generation the user has left (ADR 0008). */
  private async shred(firmId: string, userId: string, user: UserState): Promise<void> {
    if (user.status !== 'unregistered') {
      await shredRetiredKeys(this.keys, firmId, userId, user.mfa.generation);
    }
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

  /** The time step the code matches, or 400 invalid-code. */
  private async requireCode(
    firmId: string,
    userId: string,
    enrollmentId: string,
    sealed: SealedSecret,
    code: string,
  ): Promise<number> {
    const secret = (await this.openSecret(firmId, userId, enrollmentId, sealed)).toString('utf8');
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

  /**
   * The enrollment a start (or its retry) answers. A retry after the
   * enrollment was confirmed, reset or expired gets a clear 409, never a new
   * secret under the same enrollment id.
   */
  private stillPending(user: RegisteredUser, enrollmentId: string): PendingEnrollment {
    const pending = user.mfa.pending.get(enrollmentId);
    if (!pending) {
      if (user.mfa.factors.has(factorIdOf(enrollmentId))) {
        throw conflict(
          'enrollment-already-confirmed',
          `Enrollment ${enrollmentId} was already confirmed; start a new one to add another factor.`,
        );
      }
      throw conflict(
        'enrollment-not-pending',
        `Enrollment ${enrollmentId} is no longer pending (it expired or the user was reset); start a new one.`,
      );
    }
    requireNotExpired(pending, this.clock.now().toISOString());
    return pending;
  }

  private async lastPosition(firmId: string, userId: string): Promise<bigint> {
    return (await this.commands.load(streams.user(firmId, userId), userDecider)).lastPosition;
  }

  private limits(): EnrollmentLimits {
    return {
      maxTotpFactors: this.config.totp.maxFactors,
      maxPendingEnrollments: this.config.totp.maxPendingEnrollments,
    };
  }

  private inFuture(ms: number): string {
    return new Date(this.clock.now().getTime() + ms).toISOString();
  }
}

/** The user handle a security key stores: stable, and naming nobody (16 bytes of a hash). */
export function userHandleOf(firmId: string, userId: string): Uint8Array<ArrayBuffer> {
  return new Uint8Array(
    createHash('sha256').update(`${firmId}\u0000${userId}`).digest().subarray(0, 16),
  );
}

function requireNotExpired(pending: PendingEnrollment, now: string): void {
  if (pending.expiresAt <= now) {
    throw conflict(
      'enrollment-expired',
      `Enrollment ${pending.enrollmentId} expired at ${pending.expiresAt}; start a new one.`,
    );
  }
}

/**
 * The time step a code matches: the current 30 s step or one either side
 * (RFC 6238 with SHA-1, 6 digits). Null when it matches none.
 */
export function matchTotp(secret: string, code: string, now: Date): number | null {
  try {
    const result = verifySync({
      secret,
      token: code,
      epoch: Math.floor(now.getTime() / 1000),
      epochTolerance: 30,
    });
    return result.valid && 'timeStep' in result ? result.timeStep : null;
  } catch {
    return null; // a malformed token matches nothing
  }
}

export function registered(facts: UserFactsSnapshot, userId: string): RegisteredUser {
  if (facts.user.status === 'unregistered') {
    throw notFound('user-not-found', `User ${userId} is not registered in this firm.`);
  }
  return facts.user;
}

export function credentialsOf(factors: Iterable<Factor>): WebAuthnCredential[] {
  return [...factors].flatMap((factor) => (factor.credential ? [factor.credential] : []));
}

/** The challenge a browser signed, from its clientDataJSON (base64url JSON). */
export function challengeOf(clientDataJSON: unknown): string {
  try {
    const parsed = JSON.parse(
      Buffer.from(String(clientDataJSON), 'base64url').toString('utf8'),
    ) as {
      challenge?: unknown;
    };
    if (typeof parsed.challenge === 'string' && parsed.challenge.length > 0)
      return parsed.challenge;
  } catch {
    // fall through to the refusal
  }
  throw new DomainError(
    'validation-failed',
    'response.clientDataJSON is not base64url JSON with a challenge.',
    'invalid',
    { errors: [{ field: 'response.clientDataJSON', message: 'must carry the challenge' }] },
  );
}

function enrollmentNotFound(enrollmentId: string): DomainError {
  return notFound(
    'enrollment-not-found',
    `There is no pending enrollment ${enrollmentId} for this user (it was confirmed, reset, or never started).`,
  );
}

function registrationRefused(error: unknown): DomainError {
  const why = error instanceof Error ? `: ${error.message}` : '';
  return new DomainError(
    'registration-not-verified',
    `The security key's registration could not be verified${why}`.slice(0, 300),
    'invalid',
  );
}
