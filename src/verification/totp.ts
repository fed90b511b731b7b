import { verifySync } from 'otplib';

/**
 * The RFC 6238 time step a code matches, checked with SHA-1, 6 digits and 30 s
 * steps: the current step or one either side (DESIGN §4), or null. A malformed
 * code matches nothing. Every check of a TOTP code (an enrollment's
 * confirmation, a login) goes through here; whether the step was spent is the
 * verification decider's rule.
 */
export function matchTotp(secret: string, code: string, now: Date): number | null {
  try {
    const result = verifySync({
      secret,
      token: code,
      // otplib takes Unix seconds, and its tolerance in seconds: ±30 is one step either side.
      epoch: Math.floor(now.getTime() / 1000),
      epochTolerance: 30,
    });
    return result.valid && 'timeStep' in result ? result.timeStep : null;
  } catch {
    return null;
  }
}
