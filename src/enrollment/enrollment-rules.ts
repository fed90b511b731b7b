import type { AppConfig } from '../config/config';
import { conflict } from '../shared/domain-error';
import type { RegisteredUser } from '../directory/user.decider';
import { EnrollmentLimits, factorIdOf, PendingEnrollment, requireNotExpired } from './mfa.decider';

/** A started enrollment must be confirmed within this time (DESIGN §2.4). */
export const ENROLLMENT_TTL_MS = 10 * 60 * 1000;

/** The deployment's caps on enrollment (MFA_MAX_TOTP_FACTORS, MFA_MAX_PENDING_ENROLLMENTS). */
export function enrollmentLimits(config: Pick<AppConfig, 'totp'>): EnrollmentLimits {
  return {
    maxTotpFactors: config.totp.maxFactors,
    maxPendingEnrollments: config.totp.maxPendingEnrollments,
  };
}

/**
 * The enrollment a start (or its retry) answers. A retry after the enrollment
 * was confirmed, reset or expired gets a clear 409 (enrollment-already-confirmed,
 * enrollment-not-pending, enrollment-expired), never a new secret under the
 * same enrollment id.
 */
export function stillPending(
  user: RegisteredUser,
  enrollmentId: string,
  now: string,
): PendingEnrollment {
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
  requireNotExpired(pending, now);
  return pending;
}
