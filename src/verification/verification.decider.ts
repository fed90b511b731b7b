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

export const MAX_CONSECUTIVE_FAILURES = 5;
export const LOCKOUT_MS = 15 * 60 * 1000;
/** Outstanding WebAuthn authentication challenges kept per user; the oldest goes first. */
const MAX_OPEN_CHALLENGES = 5;

export interface VerificationState {
  generation: number;
  /** The last TOTP time step accepted for this user: that step and earlier ones are replays. */
  lastAcceptedStep: number | null;
  consecutiveFailures: number;
  lockedUntil: string | null;
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

/** The state a decision starts from: a reset (a new generation) or an expired lock starts over. */
export function currentState(
  state: VerificationState,
  generation: number,
  now: string,
): VerificationState {
  if (state.generation !== generation) return freshVerificationState(generation);
  if (state.lockedUntil !== null && state.lockedUntil <= now) {
    return { ...state, lockedUntil: null, consecutiveFailures: 0 };
  }
  return state;
}

export function isLocked(state: VerificationState, now: string): boolean {
  return state.lockedUntil !== null && state.lockedUntil > now;
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
    WebAuthnChallengeIssued: true,
    WebAuthnVerificationSucceeded: true,
    WebAuthnVerificationFailed: true,
  }),

  initialState: () => freshVerificationState(0),

  decide(command, stored, { now, generation }) {
    const state = currentState(stored, generation, now);
    const openChallenges = state.challenges.filter(({ expiresAt }) => expiresAt > now);

    switch (command.type) {
      case 'RecordTotpAttempt': {
        if (isLocked(state, now)) throw totpLocked(state.lockedUntil as string, now);
        const { match } = command;
        const spent = Math.max(state.lastAcceptedStep ?? -1, command.spentStep ?? -1);
        if (match && match.timeStep > spent) {
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
              reason: match ? 'replayed-code' : 'invalid-code',
              consecutiveFailures,
              attemptsLeft: Math.max(MAX_CONSECUTIVE_FAILURES - consecutiveFailures, 0),
              failedAt: now,
              state: failed,
            },
          },
        ];
        if (consecutiveFailures >= MAX_CONSECUTIVE_FAILURES) {
          const lockedUntil = new Date(Date.parse(now) + LOCKOUT_MS).toISOString();
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
              state: {
                ...state,
                challenges,
                counters: { ...state.counters, [outcome.credentialId]: outcome.counter },
                lastUsed: { ...state.lastUsed, [outcome.factorId]: now },
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
