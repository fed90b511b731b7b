import { assertNever } from '../shared/decider';
import { conflict, DomainError, notFound } from '../shared/domain-error';
import type { SealedSecret } from '../crypto/secret-box';
import { deterministicId } from '../shared/deterministic-id';
import { licenseExhausted } from '../subscription/subscription.decider';

/*
 * A user's factors, in the user's own stream (`user-{firm}/{user}`), beside the
 * directory facts they depend on: deactivating a user and resetting its
 * factors are then one append, never two.
 *
 * Enrollment is two steps. Starting one records what the second step checks
 * (the sealed TOTP secret, or the WebAuthn challenge) with an expiry;
 * confirming turns it into a factor. A reset removes every factor and pending
 * enrollment at once and moves the user to the next *generation*: the data
 * key of the old generation is destroyed, the seat of the old generation is
 * released, and nothing of the old generation can be confirmed any more.
 */

export type FactorType = 'totp' | 'webauthn';

/** What the browser's authenticator gave us at registration, as verified by the server library. */
export interface WebAuthnCredential {
  credentialId: string;
  publicKey: string;
  counter: number;
  transports: string[];
  aaguid: string;
  attestationFormat: string;
  backedUp: boolean;
}

export interface PendingEnrollment {
  enrollmentId: string;
  factorType: FactorType;
  label: string;
  expiresAt: string;
  /** TOTP: the secret, sealed with the user's data key of this generation. */
  secret?: SealedSecret;
  /** WebAuthn: the registration challenge, usable once. */
  challenge?: string;
  /** WebAuthn: the key the browser registered, verified; the seat comes next. */
  verifiedCredential?: WebAuthnCredential;
}

export interface Factor {
  factorId: string;
  enrollmentId: string;
  factorType: FactorType;
  label: string;
  createdAt: string;
  secret?: SealedSecret;
  credential?: WebAuthnCredential;
  /** TOTP: the time step of the code that confirmed it; that code is spent (DESIGN §4). */
  acceptedStep?: number;
}

export interface MfaState {
  generation: number;
  pending: ReadonlyMap<string, PendingEnrollment>;
  factors: ReadonlyMap<string, Factor>;
}

export const RESET_TRIGGERS = ['superuser', 'deactivation'] as const;
export type ResetTrigger = (typeof RESET_TRIGGERS)[number];

export type MfaEvent =
  | {
      type: 'TotpEnrollmentStarted';
      data: {
        userId: string;
        enrollmentId: string;
        label: string;
        generation: number;
        secret: SealedSecret;
        algorithm: 'SHA1';
        digits: 6;
        period: 30;
        expiresAt: string;
        startedAt: string;
        /** Pending enrollments this start replaces (the oldest, beyond the cap); absent when none. */
        replaces?: string[];
      };
    }
  | {
      type: 'WebAuthnRegistrationStarted';
      data: {
        userId: string;
        enrollmentId: string;
        label: string;
        generation: number;
        challenge: string;
        expiresAt: string;
        startedAt: string;
        replaces?: string[];
      };
    }
  | {
      /**
       * The attestation was verified; the challenge is spent. Recorded before
       * the seat is taken so that a confirmation interrupted after taking its
       * seat can be finished from the log (see the seat keeper).
       */
      type: 'WebAuthnRegistrationVerified';
      data: {
        userId: string;
        enrollmentId: string;
        generation: number;
        credential: WebAuthnCredential;
        verifiedAt: string;
      };
    }
  | {
      type: 'FactorConfirmed';
      data: {
        userId: string;
        factorId: string;
        enrollmentId: string;
        factorType: FactorType;
        label: string;
        generation: number;
        confirmedAt: string;
        credential?: WebAuthnCredential;
        /** TOTP: the RFC 6238 time step of the confirming code, which login then refuses as a replay. */
        acceptedStep?: number;
      };
    }
  | {
      type: 'EnrollmentReset';
      data: {
        userId: string;
        reason: string;
        trigger: ResetTrigger;
        factorIds: string[];
        /** The generation the user moves to. */
        generation: number;
        resetAt: string;
      };
    };

/**
 * The caps a deployment sets on enrollment (issue 12 §4; configuration
 * MFA_MAX_TOTP_FACTORS, MFA_MAX_PENDING_ENROLLMENTS). Every TOTP factor is
 * tried at login, so each one adds to an attacker's odds: their number is
 * capped. Pending enrollments are capped so that a page reloaded again and
 * again does not pile up secrets: a start beyond the cap replaces the oldest.
 */
export interface EnrollmentLimits {
  maxTotpFactors: number;
  maxPendingEnrollments: number;
}

export const DEFAULT_ENROLLMENT_LIMITS: EnrollmentLimits = {
  maxTotpFactors: 5,
  maxPendingEnrollments: 3,
};

/** Facts from outside the user's stream that a start or a confirmation depends on. */
export interface Eligibility {
  /** Subscription active, user active, and a switch covers the user. */
  mfaEnabled: boolean;
  /** The user holds a seat of its current generation. */
  holdsSeat: boolean;
  /** Seats in use are below the license count. */
  seatAvailable: boolean;
}

export type MfaCommand =
  | {
      type: 'StartTotpEnrollment';
      userId: string;
      enrollmentId: string;
      label: string;
      generation: number;
      secret: SealedSecret;
      expiresAt: string;
      eligibility: Eligibility;
      limits?: EnrollmentLimits;
    }
  | {
      type: 'StartWebAuthnRegistration';
      userId: string;
      enrollmentId: string;
      label: string;
      generation: number;
      challenge: string;
      expiresAt: string;
      eligibility: Eligibility;
      limits?: EnrollmentLimits;
    }
  | {
      type: 'RecordWebAuthnRegistration';
      userId: string;
      enrollmentId: string;
      generation: number;
      credential: WebAuthnCredential;
    }
  | {
      /**
       * The proof was checked (the code, the attestation) by the caller, who
       * takes the seat in the same append (seats-and-factors.decision.ts). `completing`:
       * the seat keeper finishes a confirmation whose seat was taken before a
       * crash, on a store without atomic multi-stream appends; the proof was
       * checked in time then, so the expiry no longer matters.
       */
      type: 'ConfirmFactor';
      userId: string;
      enrollmentId: string;
      factorId: string;
      generation: number;
      completing: boolean;
      /** TOTP: the time step the confirming code matched. */
      acceptedStep?: number;
      /** WebAuthn: the key, verified now (else the one a fallback recorded on the enrollment). */
      credential?: WebAuthnCredential;
      limits?: EnrollmentLimits;
    }
  | { type: 'ResetEnrollment'; userId: string; reason: string; trigger: ResetTrigger };

/** The factor id a confirmation gives: derived, so a confirmation finished twice gives one factor. */
export const factorIdOf = (enrollmentId: string) => deterministicId('factor', enrollmentId);

/**
 * The ConfirmFactor command of an enrollment (the factor id derives from it):
 * built here only, for the confirmations (seats-and-factors.decision.ts) and
 * the seat keeper's completions alike.
 */
export function confirmFactor(
  fields: Omit<Extract<MfaCommand, { type: 'ConfirmFactor' }>, 'type' | 'factorId'>,
): Extract<MfaCommand, { type: 'ConfirmFactor' }> {
  return { type: 'ConfirmFactor', factorId: factorIdOf(fields.enrollmentId), ...fields };
}

export const initialMfaState = (): MfaState => ({
  generation: 0,
  pending: new Map(),
  factors: new Map(),
});

export function hasFactors(mfa: MfaState): boolean {
  return mfa.factors.size > 0;
}

export function decideMfa(
  command: MfaCommand,
  mfa: MfaState,
  active: boolean,
  now: string,
): MfaEvent[] {
  switch (command.type) {
    case 'StartTotpEnrollment':
    case 'StartWebAuthnRegistration': {
      if (mfa.pending.has(command.enrollmentId)) return []; // the same command, retried
      requireGeneration(command.generation, mfa);
      requireMayEnroll(command.eligibility, mfa, active);
      const limits = command.limits ?? DEFAULT_ENROLLMENT_LIMITS;
      if (command.type === 'StartTotpEnrollment') requireTotpRoom(mfa, limits);
      // A user who reloads the enrollment page starts again: the oldest pending enrollment
      // makes room rather than the user being refused (its secret can never be confirmed).
      const stillPending = [...mfa.pending.values()].filter(
        (enrollment) => enrollment.expiresAt > now,
      );
      const excess = stillPending.length - limits.maxPendingEnrollments + 1;
      const replaces = stillPending.slice(0, Math.max(excess, 0)).map((e) => e.enrollmentId);
      const base = {
        userId: command.userId,
        enrollmentId: command.enrollmentId,
        label: command.label,
        generation: command.generation,
        expiresAt: command.expiresAt,
        startedAt: now,
        ...(replaces.length > 0 ? { replaces } : {}),
      };
      return command.type === 'StartTotpEnrollment'
        ? [
            {
              type: 'TotpEnrollmentStarted',
              data: { ...base, secret: command.secret, algorithm: 'SHA1', digits: 6, period: 30 },
            },
          ]
        : [
            {
              type: 'WebAuthnRegistrationStarted',
              data: { ...base, challenge: command.challenge },
            },
          ];
    }

    case 'RecordWebAuthnRegistration': {
      const pending = requirePending(mfa, command.enrollmentId, command.generation);
      if (pending.factorType !== 'webauthn') throw notWebAuthn(command.enrollmentId);
      if (pending.verifiedCredential) {
        throw conflict('challenge-already-used', 'This registration challenge was already used.');
      }
      if (!active) throw userInactive();
      requireNotExpired(pending, now);
      if (credentialInUse(mfa, command.credential.credentialId)) {
        throw credentialAlreadyRegistered();
      }
      return [
        {
          type: 'WebAuthnRegistrationVerified',
          data: {
            userId: command.userId,
            enrollmentId: command.enrollmentId,
            generation: mfa.generation,
            credential: command.credential,
            verifiedAt: now,
          },
        },
      ];
    }

    case 'ConfirmFactor': {
      if (mfa.factors.has(command.factorId)) return []; // already confirmed
      const pending = requirePending(mfa, command.enrollmentId, command.generation);
      if (!command.completing) {
        if (!active) throw userInactive();
        // A verified registration that never got its seat expires like any other (DESIGN §2.4).
        requireNotExpired(pending, now);
      }
      const credential = command.credential ?? pending.verifiedCredential;
      if (pending.factorType === 'webauthn' && !credential) {
        throw conflict(
          'registration-not-verified',
          `Enrollment ${command.enrollmentId} has no verified security key yet.`,
        );
      }
      if (credential && credentialInUse(mfa, credential.credentialId)) {
        throw credentialAlreadyRegistered();
      }
      if (pending.factorType === 'totp' && !command.completing) {
        requireTotpRoom(mfa, command.limits ?? DEFAULT_ENROLLMENT_LIMITS);
      }
      return [
        {
          type: 'FactorConfirmed',
          data: {
            userId: command.userId,
            factorId: command.factorId,
            enrollmentId: command.enrollmentId,
            factorType: pending.factorType,
            label: pending.label,
            generation: mfa.generation,
            confirmedAt: now,
            ...(credential ? { credential } : {}),
            ...(pending.factorType === 'totp' && command.acceptedStep !== undefined
              ? { acceptedStep: command.acceptedStep }
              : {}),
          },
        },
      ];
    }

    case 'ResetEnrollment':
      if (mfa.factors.size === 0 && mfa.pending.size === 0) return [];
      return [resetEvent(command.userId, command.reason, command.trigger, mfa, now)];

    default:
      return assertNever(command);
  }
}

export function resetEvent(
  userId: string,
  reason: string,
  trigger: ResetTrigger,
  mfa: MfaState,
  now: string,
): MfaEvent {
  return {
    type: 'EnrollmentReset',
    data: {
      userId,
      reason,
      trigger,
      factorIds: [...mfa.factors.keys()],
      generation: mfa.generation + 1,
      resetAt: now,
    },
  };
}

export function evolveMfa(mfa: MfaState, event: MfaEvent): MfaState {
  switch (event.type) {
    case 'TotpEnrollmentStarted':
    case 'WebAuthnRegistrationStarted': {
      const { data } = event;
      // Enrollments that expired before this one started can never be confirmed, nor can those
      // it replaces: drop them.
      const replaced = new Set(data.replaces ?? []);
      const pending = new Map(
        [...mfa.pending].filter(
          ([id, enrollment]) => enrollment.expiresAt > data.startedAt && !replaced.has(id),
        ),
      );
      pending.set(data.enrollmentId, {
        enrollmentId: data.enrollmentId,
        factorType: event.type === 'TotpEnrollmentStarted' ? 'totp' : 'webauthn',
        label: data.label,
        expiresAt: data.expiresAt,
        ...(event.type === 'TotpEnrollmentStarted'
          ? { secret: event.data.secret }
          : { challenge: event.data.challenge }),
      });
      return { ...mfa, pending };
    }
    case 'WebAuthnRegistrationVerified': {
      const enrollment = mfa.pending.get(event.data.enrollmentId);
      if (!enrollment) return mfa;
      const pending = new Map(mfa.pending);
      pending.set(event.data.enrollmentId, {
        ...enrollment,
        verifiedCredential: event.data.credential,
      });
      return { ...mfa, pending };
    }
    case 'FactorConfirmed': {
      const { data } = event;
      const enrollment = mfa.pending.get(data.enrollmentId);
      const pending = new Map(mfa.pending);
      pending.delete(data.enrollmentId);
      const factors = new Map(mfa.factors);
      factors.set(data.factorId, {
        factorId: data.factorId,
        enrollmentId: data.enrollmentId,
        factorType: data.factorType,
        label: data.label,
        createdAt: data.confirmedAt,
        ...(enrollment?.secret ? { secret: enrollment.secret } : {}),
        ...(data.credential ? { credential: data.credential } : {}),
        ...(data.acceptedStep !== undefined ? { acceptedStep: data.acceptedStep } : {}),
      });
      return { ...mfa, pending, factors };
    }
    case 'EnrollmentReset':
      return { generation: event.data.generation, pending: new Map(), factors: new Map() };
    default:
      return assertNever(event);
  }
}

export const MFA_EVENT_TYPES: ReadonlySet<string> = new Set([
  'TotpEnrollmentStarted',
  'WebAuthnRegistrationStarted',
  'WebAuthnRegistrationVerified',
  'FactorConfirmed',
  'EnrollmentReset',
]);

export function isMfaEvent(event: { type: string }): event is MfaEvent {
  return MFA_EVENT_TYPES.has(event.type);
}

export function credentialInUse(mfa: MfaState, credentialId: string): boolean {
  return [...mfa.factors.values()].some(
    (factor) => factor.credential?.credentialId === credentialId,
  );
}

function requireGeneration(generation: number, mfa: MfaState): void {
  if (generation !== mfa.generation) {
    // The user was reset while this command was prepared: its key and seat are gone.
    throw conflict(
      'concurrency-conflict',
      "The user's enrollment was reset while the command ran; retry it.",
    );
  }
}

function requireTotpRoom(mfa: MfaState, limits: EnrollmentLimits): void {
  const apps = [...mfa.factors.values()].filter((factor) => factor.factorType === 'totp').length;
  if (apps >= limits.maxTotpFactors) {
    throw conflict(
      'totp-factor-limit',
      `The user already has ${apps} authenticator apps, the most allowed; a firm admin's reset removes them.`,
      { maxTotpFactors: limits.maxTotpFactors },
    );
  }
}

function requireMayEnroll(eligibility: Eligibility, mfa: MfaState, active: boolean): void {
  if (!active) throw userInactive();
  if (!eligibility.mfaEnabled) {
    throw conflict('mfa-not-enabled', 'MFA is not enabled for this user.');
  }
  // A user who already holds a seat can always add another factor.
  if (!hasFactors(mfa) && !eligibility.holdsSeat && !eligibility.seatAvailable) {
    throw licenseExhausted();
  }
}

function requirePending(mfa: MfaState, enrollmentId: string, generation: number) {
  const pending = mfa.pending.get(enrollmentId);
  if (!pending || generation !== mfa.generation) throw enrollmentNotFound(enrollmentId);
  return pending;
}

/** 404 enrollment-not-found: confirmed, reset, expired and dropped, or never started. */
export function enrollmentNotFound(enrollmentId: string): DomainError {
  return notFound(
    'enrollment-not-found',
    `There is no pending enrollment ${enrollmentId} for this user (it was confirmed, reset or never started).`,
  );
}

function notWebAuthn(enrollmentId: string): DomainError {
  return notFound(
    'enrollment-not-found',
    `Enrollment ${enrollmentId} is not a security-key registration.`,
  );
}

/** DESIGN §2.4: a started but unconfirmed enrollment expires (409 enrollment-expired). */
export function requireNotExpired(pending: PendingEnrollment, now: string): void {
  if (pending.expiresAt <= now) {
    throw conflict(
      'enrollment-expired',
      `Enrollment ${pending.enrollmentId} expired at ${pending.expiresAt}; start a new one.`,
    );
  }
}

function credentialAlreadyRegistered(): DomainError {
  return conflict(
    'credential-already-registered',
    'This security key is already registered for the user.',
  );
}

function userInactive(): DomainError {
  return conflict('user-inactive', 'The user is deactivated.');
}
