import type { ActorRole, RecordedEvent } from '../../src/event-store/event-store.port';
import {
  checkApplyOnce,
  checkEmails,
  checkSeats,
  CommandRecord,
  Kill,
} from '../support/guarantees-checks';
import type { ReceivedMail } from '../support/smtp-sink';

/*
 * The soak's checks (test/support/guarantees-checks.ts) must be able to fail:
 * given a log that breaks a guarantee, each names the break; given one that
 * keeps it, none does. The soak itself runs in guarantees-soak.spec.ts.
 */

const FIRM = 'f';
let position = 0n;
const revisions = new Map<string, bigint>();

/** One append: consecutive positions, consecutive revisions per stream, one decision time. */
function append(
  commandId: string,
  parts: Array<[streamId: string, type: string, data: Record<string, unknown>]>,
  {
    correlationId = `corr-${commandId}`,
    at = '2026-01-15T09:00:00.000Z',
    role = 'host' as ActorRole,
  } = {},
): RecordedEvent[] {
  return parts.map(([streamId, type, data], index) => {
    const revision = revisions.get(streamId) ?? 0n;
    revisions.set(streamId, revision + 1n);
    position += 1n;
    return {
      type,
      data: data as RecordedEvent['data'],
      streamId,
      revision,
      position,
      metadata: {
        eventId: `${commandId}-${streamId}-${index}-${position}`,
        firmId: FIRM,
        actor: { id: 'a', role },
        correlationId,
        causationId: commandId,
        commandId,
        occurredAt: at,
        schemaVersion: 1,
      },
    };
  });
}

function command(
  seq: number,
  kind: CommandRecord['kind'],
  status: number | undefined,
  body: Record<string, unknown> = {},
): CommandRecord {
  return {
    seq,
    client: 0,
    kind,
    firmId: FIRM,
    userId: 'u',
    method: 'POST',
    path: '/p',
    body: {},
    key: `k${seq}`,
    commandId: `c${seq}`,
    attempts: [
      {
        correlationId: `corr-c${seq}`,
        instance: 0,
        startedAt: 0,
        endedAt: 0,
        ...(status === undefined ? { lost: 'UND_ERR_SOCKET' } : { status }),
      },
    ],
    ...(status === undefined ? {} : { answer: { status, body, attempt: 0 } }),
  };
}

const subscription = `subscription-${FIRM}`;
const user = (id: string) => `user-${FIRM}/${id}`;

beforeEach(() => {
  position = 0n;
  revisions.clear();
});

describe('check 1: every command applies once', () => {
  it('names a command appended twice, one acknowledged without events, one refused that appended', () => {
    const log = [
      ...append('c0', [[user('u'), 'EnrollmentReset', { generation: 1 }]]),
      ...append('other', [[user('u'), 'UserReactivated', {}]]),
      // The retry of c0, decided again on newer state.
      ...append('c0', [[user('u'), 'EnrollmentReset', { generation: 2 }]], {
        at: '2026-01-15T09:01:00.000Z',
      }),
      ...append('c2', [[user('u'), 'UserDeactivated', {}]]),
    ];
    const result = checkApplyOnce(log, [
      command(0, 'reset', 200, { position: '3' }),
      command(1, 'totp-confirm', 200, { position: '3' }),
      command(2, 'deactivate', 409),
    ]);
    expect(result.violations).toEqual([
      expect.stringMatching(/^command id c0 is not one append \(positions not consecutive\)/),
      expect.stringMatching(/^acknowledged command #1 .* has no event in the log/),
      expect.stringMatching(/^refused command #2 .* appended 4 user-f\/u#3 UserDeactivated/),
    ]);
  });

  it('accepts a command applied by a lost attempt and answered by its retry', () => {
    const log = append('c0', [[user('u'), 'UserDeactivated', {}]], { correlationId: 'lost-one' });
    const retried = command(0, 'deactivate', 200, { position: '1' });
    retried.attempts.unshift({
      correlationId: 'lost-one',
      instance: 1,
      startedAt: 0,
      endedAt: 0,
      lost: 'x',
    });
    retried.answer!.attempt = 1;
    expect(checkApplyOnce(log, [retried])).toMatchObject({ violations: [], recovered: 1 });
  });
});

describe('check 2: S1 and S2', () => {
  const activate = () =>
    append('act', [[subscription, 'SubscriptionActivated', { licenseCount: 1 }]]);
  const confirm = (id: string, userId: string, seat: boolean) =>
    append(id, [
      ...(seat
        ? [
            [
              subscription,
              'SeatAssigned',
              { userId, generation: 0, enrollmentId: `e-${userId}` },
            ] as [string, string, Record<string, unknown>],
          ]
        : []),
      [user(userId), 'FactorConfirmed', { factorId: `f-${userId}`, enrollmentId: `e-${userId}` }],
    ]);

  it('names a seat beyond the license count and a factor without a seat', () => {
    const log = [
      ...activate(),
      ...confirm('c1', 'a', true),
      ...confirm('c2', 'b', true),
      ...confirm('c3', 'c', false),
    ];
    expect(checkSeats(log, [FIRM]).violations).toEqual([
      expect.stringMatching(
        /^S1: f: 2 seats in use > 1 licenses after 4 subscription-f#2 SeatAssigned/,
      ),
      expect.stringMatching(
        /^S2 after the append ending at 6 user-f\/c#0 FactorConfirmed: f: c has 1 confirmed/,
      ),
      expect.stringMatching(/^S2 at quiet: f: c has 1 confirmed factor/),
    ]);
  });

  it('accepts usage above a forced lower count, as long as no seat is given meanwhile', () => {
    const log = [
      ...append('act', [[subscription, 'SubscriptionActivated', { licenseCount: 2 }]]),
      ...confirm('c1', 'a', true),
      ...confirm('c2', 'b', true),
      ...append('lower', [
        [subscription, 'LicenseCountChanged', { licenseCount: 1, forced: true }],
      ]),
    ];
    expect(checkSeats(log, [FIRM]).violations).toEqual([]);
    const more = [...log, ...confirm('c3', 'c', true)];
    expect(checkSeats(more, [FIRM]).violations).toEqual([
      expect.stringMatching(/^S1: f: 3 seats in use > 1 licenses/),
    ]);
  });
});

describe('check 4: every due email once', () => {
  const queue = (messageId: string) =>
    append(`q-${messageId}`, [
      [
        `notifications-${FIRM}`,
        'EmailQueued',
        { messageId, notification: 'license-usage-80', recipient: { email: 'a@f.example' } },
      ],
    ]);
  const sent = (messageId: string, at: number) =>
    append(`s-${messageId}`, [[`notifications-${FIRM}`, 'EmailSent', { messageId }]], {
      at: new Date(at).toISOString(),
      role: 'system',
    });
  const mail = (messageId: string, at: number): ReceivedMail =>
    ({
      messageId: `<${messageId}@localhost>`,
      to: 'a@f.example',
      notification: 'license-usage-80',
      dataEndedAt: at,
    }) as ReceivedMail;
  const kill: Kill = { at: 2_000, exitedAt: 2_010, instances: [0], mailerHolder: true };

  it('counts copies per Message-ID: a second copy without a kill in flight is named', () => {
    const log = [...queue('m1'), ...sent('m1', 1_500)];
    expect(checkEmails(log, [mail('m1', 1_000), mail('m1', 1_200)], [kill]).violations).toEqual([
      expect.stringMatching(/^emails: license-usage-80 to a@f.example \(m1\) arrived 2 times/),
    ]);
  });

  it('allows a second copy of a message the killed holder had handed over but not recorded', () => {
    const log = [...queue('m1'), ...sent('m1', 5_000)];
    expect(checkEmails(log, [mail('m1', 1_900), mail('m1', 4_900)], [kill])).toMatchObject({
      violations: [],
      copies: 1,
    });
    // Not when the killed instance was not sending, nor when the send was recorded before the kill.
    expect(
      checkEmails(log, [mail('m1', 1_900), mail('m1', 4_900)], [{ ...kill, mailerHolder: false }])
        .violations,
    ).toHaveLength(1);
    const recorded = [...queue('m2'), ...sent('m2', 1_950)];
    expect(
      checkEmails(recorded, [mail('m2', 1_900), mail('m2', 4_900)], [kill]).violations,
    ).toHaveLength(1);
  });

  it('names an email that never arrived and one that was never queued', () => {
    const log = [...queue('m1'), ...sent('m1', 1_000)];
    expect(checkEmails(log, [mail('m9', 1_000)], []).violations).toEqual([
      expect.stringMatching(/^emails: 1 message\(s\) with Message-ID m9 arrived, never queued/),
      expect.stringMatching(
        /^emails: license-usage-80 to a@f.example \(m1, queued at 1\) never arrived/,
      ),
    ]);
  });
});
