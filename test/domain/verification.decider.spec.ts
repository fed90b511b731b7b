import {
  freshVerificationState,
  VerificationCommand,
  verificationDecider,
  VerificationEvent,
  VerificationState,
} from '../../src/verification/verification.decider';
import { fold } from '../../src/shared/decider';

/** Login verification: replay, lockout, challenges, counters; the state is the last event's. */
const t0 = Date.parse('2026-01-15T09:00:00.000Z');
const at = (ms: number) => new Date(t0 + ms).toISOString();
const decide = (
  history: VerificationEvent[],
  command: VerificationCommand,
  now = at(0),
  generation = 0,
) => verificationDecider.decide(command, fold(verificationDecider, history), { now, generation });
const attempt = (match: { factorId: string; timeStep: number } | null): VerificationCommand => ({
  type: 'RecordTotpAttempt',
  match,
});
const run = (commands: VerificationCommand[], now = at(0)) => {
  const history: VerificationEvent[] = [];
  for (const command of commands) history.push(...decide(history, command, now));
  return history;
};
const stateOf = (history: VerificationEvent[]): VerificationState =>
  fold(verificationDecider, history);

describe('Login verification', () => {
  it('accepts a step once; an equal or earlier step is a replay', () => {
    const history = run([attempt({ factorId: 'f', timeStep: 100 })]);
    expect(history.map((e) => e.type)).toEqual(['TotpVerificationSucceeded']);
    expect(decide(history, attempt({ factorId: 'f', timeStep: 100 }))[0]).toMatchObject({
      type: 'TotpVerificationFailed',
      data: { reason: 'replayed-code', consecutiveFailures: 1, attemptsLeft: 4 },
    });
    expect(decide(history, attempt({ factorId: 'f', timeStep: 99 }))[0].type).toBe(
      'TotpVerificationFailed',
    );
    expect(decide(history, attempt({ factorId: 'f', timeStep: 101 }))[0].type).toBe(
      'TotpVerificationSucceeded',
    );
  });

  it('the fifth failure in a row locks for 15 minutes; attempts while locked are refused with 423 and record nothing', () => {
    const history = run(Array.from({ length: 5 }, () => attempt(null)));
    expect(history.map((e) => e.type)).toEqual([
      ...Array(5).fill('TotpVerificationFailed'),
      'TotpVerificationLocked',
    ]);
    expect(stateOf(history).lockedUntil).toBe(at(15 * 60_000));
    expect(() =>
      decide(history, attempt({ factorId: 'f', timeStep: 1 }), at(15 * 60_000 - 1)),
    ).toThrow(expect.objectContaining({ code: 'totp-locked', kind: 'locked' }));
    const afterLock = decide(history, attempt({ factorId: 'f', timeStep: 1 }), at(15 * 60_000));
    expect(afterLock[0].type).toBe('TotpVerificationSucceeded');
  });

  it('after the lock lifts, the count starts over', () => {
    const history = run(Array.from({ length: 5 }, () => attempt(null)));
    const failed = decide(history, attempt(null), at(15 * 60_000));
    expect(failed).toHaveLength(1);
    expect(failed[0]).toMatchObject({ data: { consecutiveFailures: 1, attemptsLeft: 4 } });
  });

  it('a new enrollment generation (a reset) starts from a fresh state: no lock, no replay memory', () => {
    const history = run([
      attempt({ factorId: 'f', timeStep: 100 }),
      ...Array.from({ length: 5 }, () => attempt(null)),
    ]);
    const next = decide(history, attempt({ factorId: 'g', timeStep: 100 }), at(0), 1);
    expect(next[0]).toMatchObject({
      type: 'TotpVerificationSucceeded',
      data: {
        state: { ...freshVerificationState(1), lastAcceptedStep: 100, lastUsed: { g: at(0) } },
      },
    });
  });

  it('each event carries the whole state: the last event alone is the state', () => {
    const history = run([
      attempt({ factorId: 'f', timeStep: 7 }),
      attempt(null),
      { type: 'IssueWebAuthnChallenge', challenge: 'c1', expiresAt: at(300_000) },
    ]);
    expect(
      verificationDecider.evolve(freshVerificationState(0), history[history.length - 1]),
    ).toEqual(stateOf(history));
    expect(stateOf(history)).toMatchObject({ lastAcceptedStep: 7, consecutiveFailures: 1 });
  });

  describe('WebAuthn', () => {
    const issued = run([
      { type: 'IssueWebAuthnChallenge', challenge: 'c1', expiresAt: at(300_000) },
    ]);
    const ok = (counter: number): VerificationCommand => ({
      type: 'RecordWebAuthnAttempt',
      challenge: 'c1',
      outcome: { verified: true, factorId: 'k', credentialId: 'cred', counter },
    });

    it('a challenge answers one attempt; a second use is refused', () => {
      const first = decide(issued, ok(5));
      expect(first[0]).toMatchObject({
        type: 'WebAuthnVerificationSucceeded',
        data: { counter: 5 },
      });
      const again = decide([...issued, ...first], ok(6));
      expect(again[0]).toMatchObject({
        type: 'WebAuthnVerificationFailed',
        data: { reason: 'unknown-or-used-challenge' },
      });
    });

    it('an expired challenge is refused', () => {
      expect(decide(issued, ok(5), at(300_000))[0].type).toBe('WebAuthnVerificationFailed');
    });

    it('a signature counter that did not grow is refused', () => {
      const first = decide(issued, ok(5));
      const reissued = decide([...issued, ...first], {
        type: 'IssueWebAuthnChallenge',
        challenge: 'c1',
        expiresAt: at(300_000),
      });
      const stale = decide([...issued, ...first, ...reissued], ok(5));
      expect(stale[0]).toMatchObject({
        type: 'WebAuthnVerificationFailed',
        data: { reason: 'signature-counter-not-increased' },
      });
    });
  });
});
