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
import { AppConfig } from '../config/config';
import { APP_CONFIG } from '../config/config.module';
import { KEY_STORE, KeyStore } from '../crypto/key-store.port';
import { open, seal, SealedSecret } from '../crypto/secret-box';
import { RegisteredUser, userDecider } from '../directory/user.decider';
import { Clock, CLOCK } from '../shared/clock';
import { deterministicId } from '../shared/deterministic-id';
import { conflict, DomainError, notFound } from '../shared/domain-error';
import { streams } from '../shared/ids';
import { subscriptionDecider } from '../subscription/subscription.decider';
import { admitAuthenticator } from './attestation-policy';
import { Factor, PendingEnrollment, WebAuthnCredential } from './mfa';
import { factorIdOf, SeatKeeper } from './seat-keeper';
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
 * key, reset a user, list factors. A confirmation takes the user's seat first
 * (the firm's subscription stream decides S1 with an expected revision), then
 * records the factor; the seat keeper repairs a crash between the two.
 */
@Injectable()
export class EnrollmentService {
  constructor(
    private readonly commands: CommandHandler,
    private readonly facts: UserFacts,
    private readonly seats: SeatKeeper,
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
      },
      envelope,
    );
    const pending = (outcome.state as RegisteredUser).mfa.pending.get(enrollmentId);
    if (!pending?.secret) throw enrollmentNotFound(enrollmentId);
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
    if (user.mfa.factors.has(factorId)) {
      return { position: String(await this.lastPosition(firmId, userId)), factorId };
    }
    const pending = user.mfa.pending.get(enrollmentId);
    if (!pending || pending.factorType !== 'totp' || !pending.secret) {
      throw enrollmentNotFound(enrollmentId);
    }
    if (pending.expiresAt <= this.clock.now().toISOString()) {
      throw conflict(
        'enrollment-expired',
        `Enrollment ${enrollmentId} expired at ${pending.expiresAt}; start a new one.`,
      );
    }
    const secret = (await this.openSecret(firmId, userId, enrollmentId, pending.secret)).toString(
      'utf8',
    );
    if (matchTotp(secret, code, this.clock.now()) === null) {
      throw new DomainError(
        'invalid-code',
        'The code does not match the authenticator app; check the device time and try the current code.',
        'invalid',
        { errors: [{ field: 'code', message: 'does not match' }] },
      );
    }
    return this.takeSeatAndConfirm(firmId, userId, facts, pending, envelope);
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
      },
      envelope,
    );
    const state = outcome.state as RegisteredUser;
    const pending = state.mfa.pending.get(enrollmentId);
    if (!pending?.challenge) throw enrollmentNotFound(enrollmentId);
    const options = await generateRegistrationOptions({
      rpName: this.config.webauthn.rpName,
      rpID: this.config.webauthn.rpId,
      userName: user.profile.email,
      userDisplayName: user.profile.name,
      // A stable handle that names nobody: the authenticator stores it.
      userID: createHash('sha256').update(`${firmId}\u0000${userId}`).digest().subarray(0, 16),
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
    // A verified key whose confirmation did not finish (the process stopped before the seat)
    // may be sent again and finishes; any other use of a spent challenge is refused.
    const resuming = pending.verifiedCredential?.credentialId === response.id;
    if (pending.verifiedCredential && !resuming) {
      throw conflict('challenge-already-used', 'This registration challenge was already used.');
    }
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
    await admitAuthenticator(this.config.webauthn.attestation, verification.registrationInfo);
    const info = verification.registrationInfo;
    const credential: WebAuthnCredential = {
      credentialId: info.credential.id,
      publicKey: Buffer.from(info.credential.publicKey).toString('base64url'),
      counter: info.credential.counter,
      transports: info.credential.transports ?? response.response.transports ?? [],
      aaguid: info.aaguid,
      attestationFormat: info.fmt,
      backedUp: info.credentialBackedUp,
    };
    if (resuming) return this.takeSeatAndConfirm(firmId, userId, facts, pending, envelope);
    const recorded = await this.commands.handle(
      streams.user(firmId, userId),
      userDecider,
      {
        type: 'RecordWebAuthnRegistration',
        userId,
        enrollmentId: pending.enrollmentId,
        generation: user.mfa.generation,
        credential,
      },
      // The confirmation appends to the user's stream again under the request's command id:
      // this first append needs an id of its own, or the store takes FactorConfirmed for a
      // retry of this append (same event id) and drops it.
      {
        ...envelope,
        commandId: deterministicId('webauthn-registration', envelope.commandId),
        causationId: envelope.causationId ?? envelope.commandId,
      },
    );
    const verified = (recorded.state as RegisteredUser).mfa.pending.get(pending.enrollmentId);
    if (!verified) throw enrollmentNotFound(pending.enrollmentId);
    return this.takeSeatAndConfirm(
      firmId,
      userId,
      { ...facts, user: recorded.state },
      verified,
      envelope,
    );
  }

  /** Every factor of the user stops working at once; the seat is freed and the old key destroyed. */
  async reset(
    firmId: string,
    userId: string,
    reason: string,
    envelope: CommandEnvelope,
  ): Promise<{ position: string; factorsRemoved: number }> {
    const outcome = await this.commands.handle(
      streams.user(firmId, userId),
      userDecider,
      { type: 'ResetEnrollment', userId, reason, trigger: 'superuser' },
      envelope,
    );
    const reset = outcome.events.find((event) => event.type === 'EnrollmentReset');
    const released = await this.seats.afterReset(firmId, userId, envelope);
    const position = released > outcome.position ? released : outcome.position;
    return {
      position: String(position),
      factorsRemoved:
        reset?.type === 'EnrollmentReset'
          ? (reset.data as { factorIds: string[] }).factorIds.length
          : 0,
    };
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
   * The seat first, then the factor. A user who holds the seat of its current
   * generation keeps it; anyone else takes a free one or is refused with
   * `license-exhausted` — the subscription stream's expected revision makes
   * that exact under any concurrency, across processes.
   */
  private async takeSeatAndConfirm(
    firmId: string,
    userId: string,
    facts: UserFactsSnapshot,
    pending: PendingEnrollment,
    envelope: CommandEnvelope,
  ): Promise<{ position: string; factorId: string }> {
    const eligibility = eligibilityOf(facts, userId);
    if (!eligibility.mfaEnabled) {
      throw conflict('mfa-not-enabled', 'MFA is not enabled for this user.');
    }
    const user = registered(facts, userId);
    const generation = user.mfa.generation;
    if (!eligibility.holdsSeat) {
      await this.commands.handle(
        streams.subscription(firmId),
        subscriptionDecider,
        { type: 'AssignSeat', userId, generation, enrollmentId: pending.enrollmentId },
        envelope,
      );
    }
    const factorId = factorIdOf(pending.enrollmentId);
    try {
      const outcome = await this.commands.handle(
        streams.user(firmId, userId),
        userDecider,
        {
          type: 'ConfirmFactor',
          userId,
          enrollmentId: pending.enrollmentId,
          factorId,
          generation,
          // The proof was checked in time and the seat is taken: what remains is to record it,
          // as the seat keeper would, even if the expiry passed meanwhile.
          completing: true,
        },
        envelope,
      );
      return { position: String(outcome.position), factorId };
    } catch (error) {
      // Reset or deactivated meanwhile: the seat just taken may belong to nobody now.
      await this.seats.reconcile(firmId, userId, envelope);
      throw error;
    }
  }

  private async lastPosition(firmId: string, userId: string): Promise<bigint> {
    return (await this.commands.load(streams.user(firmId, userId), userDecider)).lastPosition;
  }

  private inFuture(ms: number): string {
    return new Date(this.clock.now().getTime() + ms).toISOString();
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
