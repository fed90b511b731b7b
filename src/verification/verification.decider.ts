import { assertNever, Decider, DecisionContext, eventTypesOf } from '../shared/decider';
import { DomainError } from '../shared/domain-error';

/*
 * A user's login verifications, in their own stream
 * (`verification-{firm}/{user}`), apart from the factors: logins are by far
 * the most frequent events, and the login path must not slow down as they pile
 * up. Every event here carries the verification state it leaves behind
 * (`state`), so deciding the next attempt reads one event — the stream's last
 * — however long the stream is (docs/decisions/0007).
 *
 * The state belongs to one enrollment generation: a reset starts a fresh one,
 * which lifts a lockout and forgets the counters of destroyed credentials.
 */

/**
 * The TOTP guessing budget (DESIGN §4, NIST SP 800-63B §5.2.2: at most 100
 * consecutive failed attempts on one account). Failures in a row keep
 * counting across lock periods, and only a successful verification (TOTP or
 * security key) or a reset starts the count over.
 */
export interface LockoutPolicy {
  /** Every this many failures in a row, TOTP verification locks. */
  lockAfter: number;
  /** The first lock of a run of failures; each next lock lasts twice as long (ms). */
  firstLockMs: number;
  /** The longest lock (ms). */
  maxLockMs: number;
  /**
   * After this many failures in a row, TOTP verification stays locked until a
   * reset or a successful security-key login (at most 100).
   */
  maxFailures: number;
}

export const DEFAULT_LOCKOUT: LockoutPolicy = {
  lockAfter: 5,
  firstLockMs: 15 * 60 * 1000,
  maxLockMs: 24 * 60 * 60 * 1000,
  maxFailures: 20,
};

/** Outstanding WebAuthn authentication challenges kept per user; the oldest goes first. */
const MAX_OPEN_CHALLENGES = 5;

export interface VerificationState {
  generation: number;
  /** The last TOTP time step accepted for this user: that step and earlier ones are replays. */
  lastAcceptedStep: number | null;
  /** TOTP failures since the last successful verification: they keep counting across locks. */
  consecutiveFailures: number;
  lockedUntil: string | null;
  /**
   * TOTP verification is locked until a reset or a successful security-key
   * login (`maxFailures` reached). Absent in events written before it: false.
   */
  blocked?: boolean;
  /** WebAuthn signature counters by credential id. */
  counters: Record<string, number>;
  /** When each factor last verified a login. */
  lastUsed: Record<string, string>;
  challenges: Array<{ challenge: string; expiresAt: string }>;
}

export type TotpFailureReason = 'invalid-code' | 'replayed-code';

export type VerificationEvent =
  | {
      type: 'TotpVerificationSucceeded';
      data: { factorId: string; timeStep: number; verifiedAt: string; state: VerificationState };
    }
  | {
      type: 'TotpVerificationFailed';
      data: {
        reason: TotpFailureReason;
        consecutiveFailures: number;
        attemptsLeft: number;
        failedAt: string;
        state: VerificationState;
      };
    }
  | {
      type: 'TotpVerificationLocked';
      data: { lockedUntil: string; lockedAt: string; state: VerificationState };
    }
  | {
      /** `maxFailures` failures in a row: locked until a reset or a security-key login. */
      type: 'TotpVerificationBlocked';
      data: { consecutiveFailures: number; blockedAt: string; state: VerificationState };
    }
  | {
      type: 'WebAuthnChallengeIssued';
      data: { challenge: string; expiresAt: string; issuedAt: string; state: VerificationState };
    }
  | {
      type: 'WebAuthnVerificationSucceeded';
      data: {
        factorId: string;
        credentialId: string;
        counter: number;
        verifiedAt: string;
        state: VerificationState;
      };
    }
  | {
      type: 'WebAuthnVerificationFailed';
      data: {
        reason: string;
        credentialId: string | null;
        failedAt: string;
        state: VerificationState;
      };
    };

export type WebAuthnOutcome =
  | { verified: true; factorId: string; credentialId: string; counter: number }
  | { verified: false; reason: string; credentialId: string | null };

export type VerificationCommand =
  /**
   * `match` is the factor and time step the code matched (checked by the
   * caller, with the secret), or null. `spentStep`: the latest step spent
   * outside this stream, by the code that confirmed one of the user's
   * factors (DESIGN §4: it counts as accepted), or null.
   */
  | {
      type: 'RecordTotpAttempt';
      match: { factorId: string; timeStep: number } | null;
      spentStep?: number | null;
    }
  | { type: 'IssueWebAuthnChallenge'; challenge: string; expiresAt: string }
  /** The challenge the assertion answered, and what checking its signature gave. */
  | { type: 'RecordWebAuthnAttempt'; challenge: string; outcome: WebAuthnOutcome };

export interface VerificationContext extends DecisionContext {
  /** The user's current enrollment generation. */
  generation: number;
  /** The deployment's guessing budget; the defaults when absent. */
  lockout?: LockoutPolicy;
}

export const freshVerificationState = (generation: number): VerificationState => ({
  generation,
  lastAcceptedStep: null,
  consecutiveFailures: 0,
  lockedUntil: null,
  counters: {},
  lastUsed: {},
  challenges: [],
});

/**
 * The state a decision starts from: a reset (a new generation) starts over; a
 * lock that ran out is lifted, but the failures before it still count.
 */
export function currentState(
  state: VerificationState,
  generation: number,
  now: string,
): VerificationState {
  if (state.generation !== generation) return freshVerificationState(generation);
  if (state.lockedUntil !== null && state.lockedUntil <= now) {
    return { ...state, lockedUntil: null };
  }
  return state;
}

export function isLocked(state: VerificationState, now: string): boolean {
  return state.blocked === true || (state.lockedUntil !== null && state.lockedUntil > now);
}

/** The refusal of a TOTP attempt while locked or blocked. */
export function lockedOut(state: VerificationState, now: string): DomainError {
  return state.blocked === true ? totpBlocked() : totpLocked(state.lockedUntil as string, now);
}

/** Attempts left before the next lock (or the block), after `failures` in a row. */
export function attemptsLeft(failures: number, policy: LockoutPolicy = DEFAULT_LOCKOUT): number {
  const toNextLock = policy.lockAfter - (failures % policy.lockAfter);
  return Math.max(Math.min(toNextLock, policy.maxFailures - failures), 0);
}

/** How long the lock reached after `failures` in a row lasts: doubling from the first (ms). */
export function lockDuration(failures: number, policy: LockoutPolicy = DEFAULT_LOCKOUT): number {
  const nth = Math.floor(failures / policy.lockAfter);
  return Math.min(policy.firstLockMs * 2 ** Math.max(nth - 1, 0), policy.maxLockMs);
}

export const verificationDecider: Decider<
  VerificationCommand,
  VerificationEvent,
  VerificationState,
  VerificationContext
> & { stateIsInLastEvent: true } = {
  stateIsInLastEvent: true,

  eventTypes: eventTypesOf<VerificationEvent['type']>({
    TotpVerificationSucceeded: true,
    TotpVerificationFailed: true,
    TotpVerificationLocked: true,
    TotpVerificationBlocked: true,
    WebAuthnChallengeIssued: true,
    WebAuthnVerificationSucceeded: true,
    WebAuthnVerificationFailed: true,
  }),

  initialState: () => freshVerificationState(0),

  decide(command, stored, { now, generation, lockout = DEFAULT_LOCKOUT }) {
    const state = currentState(stored, generation, now);
    const openChallenges = state.challenges.filter(({ expiresAt }) => expiresAt > now);

    switch (command.type) {
      case 'RecordTotpAttempt': {
        if (isLocked(state, now)) throw lockedOut(state, now);
        const { match } = command;
        const spent = Math.max(state.lastAcceptedStep ?? -1, command.spentStep ?? -1);
        if (match && match.timeStep <= spent) {
          // The right code, already used (a double click, a retry): refused, and not a guess,
          // so it does not count toward the lock (DESIGN §4).
          return [
            {
              type: 'TotpVerificationFailed',
              data: {
                reason: 'replayed-code',
                consecutiveFailures: state.consecutiveFailures,
                attemptsLeft: attemptsLeft(state.consecutiveFailures, lockout),
                failedAt: now,
                state,
              },
            },
          ];
        }
        if (match) {
          return [
            {
              type: 'TotpVerificationSucceeded',
              data: {
                factorId: match.factorId,
                timeStep: match.timeStep,
                verifiedAt: now,
                state: {
                  ...state,
                  lastAcceptedStep: match.timeStep,
                  consecutiveFailures: 0,
                  lockedUntil: null,
                  lastUsed: { ...state.lastUsed, [match.factorId]: now },
                },
              },
            },
          ];
        }
        const consecutiveFailures = state.consecutiveFailures + 1;
        const failed: VerificationState = { ...state, consecutiveFailures };
        const events: VerificationEvent[] = [
          {
            type: 'TotpVerificationFailed',
            data: {
              reason: 'invalid-code',
              consecutiveFailures,
              attemptsLeft: attemptsLeft(consecutiveFailures, lockout),
              failedAt: now,
              state: failed,
            },
          },
        ];
        if (consecutiveFailures >= lockout.maxFailures) {
          events.push({
            type: 'TotpVerificationBlocked',
            data: {
              consecutiveFailures,
              blockedAt: now,
              state: { ...failed, blocked: true, lockedUntil: null },
            },
          });
        } else if (consecutiveFailures % lockout.lockAfter === 0) {
          const lockedUntil = new Date(
            Date.parse(now) + lockDuration(consecutiveFailures, lockout),
          ).toISOString();
          events.push({
            type: 'TotpVerificationLocked',
            data: { lockedUntil, lockedAt: now, state: { ...failed, lockedUntil } },
          });
        }
        return events;
      }

      case 'IssueWebAuthnChallenge': {
        const challenges = [
          ...openChallenges,
          { challenge: command.challenge, expiresAt: command.expiresAt },
        ].slice(-MAX_OPEN_CHALLENGES);
        return [
          {
            type: 'WebAuthnChallengeIssued',
            data: {
              challenge: command.challenge,
              expiresAt: command.expiresAt,
              issuedAt: now,
              state: { ...state, challenges },
            },
          },
        ];
      }

      case 'RecordWebAuthnAttempt': {
        // Each challenge answers one attempt, whatever its outcome.
        const issued = openChallenges.some(({ challenge }) => challenge === command.challenge);
        const challenges = openChallenges.filter(
          ({ challenge }) => challenge !== command.challenge,
        );
        let { outcome } = command;
        // Two assertions checked at once against the same stored counter: only the first may count.
        if (outcome.verified && outcome.counter !== 0) {
          const stored = state.counters[outcome.credentialId];
          if (stored !== undefined && outcome.counter <= stored) {
            outcome = {
              verified: false,
              reason: 'signature-counter-not-increased',
              credentialId: outcome.credentialId,
            };
          }
        }
        if (!issued || !outcome.verified) {
          return [
            {
              type: 'WebAuthnVerificationFailed',
              data: {
                reason: issued
                  ? (outcome as { reason: string }).reason
                  : 'unknown-or-used-challenge',
                credentialId: outcome.credentialId,
                failedAt: now,
                state: { ...state, challenges },
              },
            },
          ];
        }
        return [
          {
            type: 'WebAuthnVerificationSucceeded',
            data: {
              factorId: outcome.factorId,
              credentialId: outcome.credentialId,
              counter: outcome.counter,
              verifiedAt: now,
              // A security-key login proves the user: the TOTP count starts over and a block lifts.
              state: {
                ...state,
                challenges,
                counters: { ...state.counters, [outcome.credentialId]: outcome.counter },
                lastUsed: { ...state.lastUsed, [outcome.factorId]: now },
                consecutiveFailures: 0,
                lockedUntil: null,
                blocked: false,
              },
            },
          },
        ];
      }

      default:
        return assertNever(command);
    }
  },

  evolve(_state, event) {
    switch (event.type) {
      case 'TotpVerificationSucceeded':
      case 'TotpVerificationFailed':
      case 'TotpVerificationLocked':
      case 'TotpVerificationBlocked':
      case 'WebAuthnChallengeIssued':
      case 'WebAuthnVerificationSucceeded':
      case 'WebAuthnVerificationFailed':
        return event.data.state;
      default:
        return assertNever(event);
    }
  },
};

export function totpLocked(lockedUntil: string, now: string): DomainError {
  const retryAfterSeconds = Math.max(
    Math.ceil((Date.parse(lockedUntil) - Date.parse(now)) / 1000),
    1,
  );
  return new DomainError(
    'totp-locked',
    `Too many failed codes in a row: TOTP verification is locked until ${lockedUntil}.`,
    'locked',
    { lockedUntil, retryAfterSeconds },
  );
}

export function totpBlocked(): DomainError {
  return new DomainError(
    'totp-blocked',
    'Too many failed codes in a row: TOTP verification is locked until a firm admin resets the ' +
      "user's MFA enrollment or the user logs in with a security key.",
    'locked',
  );
}
