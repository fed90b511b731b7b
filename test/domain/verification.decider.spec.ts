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
  it('accepts a step once; an equal or earlier step is a replay, which is not a failure', () => {
    const history = run([attempt({ factorId: 'f', timeStep: 100 })]);
    expect(history.map((e) => e.type)).toEqual(['TotpVerificationSucceeded']);
    expect(decide(history, attempt({ factorId: 'f', timeStep: 100 }))[0]).toMatchObject({
      type: 'TotpVerificationFailed',
      data: { reason: 'replayed-code', consecutiveFailures: 0, attemptsLeft: 5 },
    });
    expect(decide(history, attempt({ factorId: 'f', timeStep: 99 }))[0].type).toBe(
      'TotpVerificationFailed',
    );
    expect(decide(history, attempt({ factorId: 'f', timeStep: 101 }))[0].type).toBe(
      'TotpVerificationSucceeded',
    );
  });

  it('twenty replays of a spent code never lock: a double click is not a guess', () => {
    const history = run([
      attempt({ factorId: 'f', timeStep: 100 }),
      ...Array.from({ length: 20 }, () => attempt({ factorId: 'f', timeStep: 100 })),
    ]);
    expect(history.filter((e) => e.type === 'TotpVerificationLocked')).toEqual([]);
    expect(stateOf(history)).toMatchObject({ consecutiveFailures: 0, lockedUntil: null });
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

  it('failures keep counting across locks, each lock twice as long, and the twentieth blocks TOTP (NIST SP 800-63B §5.2.2)', () => {
    const history: VerificationEvent[] = [];
    let now = 0;
    const locks: number[] = [];
    for (let failure = 1; failure <= 20; failure++) {
      const events = decide(history, attempt(null), at(now));
      history.push(...events);
      const lock = events.find((e) => e.type === 'TotpVerificationLocked');
      if (lock?.type === 'TotpVerificationLocked') {
        const until = Date.parse(lock.data.lockedUntil);
        locks.push((until - (t0 + now)) / 60_000);
        now = until - t0;
      }
    }
    expect(locks).toEqual([15, 30, 60]);
    expect(history.at(-1)).toMatchObject({
      type: 'TotpVerificationBlocked',
      data: { consecutiveFailures: 20 },
    });
    // Blocked: no time lifts it, not even a right code.
    expect(() =>
      decide(history, attempt({ factorId: 'f', timeStep: 1 }), at(now + 365 * 86_400_000)),
    ).toThrow(expect.objectContaining({ code: 'totp-blocked', kind: 'locked' }));
  });

  it('a success starts the count over; a security-key login lifts a block', () => {
    const fourFailures = run(Array.from({ length: 4 }, () => attempt(null)));
    const success = decide(fourFailures, attempt({ factorId: 'f', timeStep: 1 }));
    expect(stateOf([...fourFailures, ...success]).consecutiveFailures).toBe(0);

    const policy = { lockAfter: 2, firstLockMs: 60_000, maxLockMs: 60_000, maxFailures: 2 };
    const blocked: VerificationEvent[] = [];
    for (let i = 0; i < 2; i++) {
      blocked.push(
        ...verificationDecider.decide(attempt(null), fold(verificationDecider, blocked), {
          now: at(0),
          generation: 0,
          lockout: policy,
        }),
      );
    }
    expect(stateOf(blocked).blocked).toBe(true);
    const key = [
      ...blocked,
      ...decide(blocked, {
        type: 'IssueWebAuthnChallenge',
        challenge: 'k1',
        expiresAt: at(60_000),
      }),
    ];
    const keyLogin = decide(key, {
      type: 'RecordWebAuthnAttempt',
      challenge: 'k1',
      outcome: { verified: true, factorId: 'k', credentialId: 'cred', counter: 3 },
    });
    expect(stateOf([...key, ...keyLogin])).toMatchObject({
      blocked: false,
      consecutiveFailures: 0,
      lockedUntil: null,
    });
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
