import { rmSync } from 'node:fs';
import type { RecordedEvent } from '../../src/event-store/event-store.port';
import { Api, ApiResponse, readLog, tempDir } from '../support/harness';
import {
  activeFirm,
  expectOk,
  host,
  mfaPath,
  oathtool,
  registerUser,
  secretOf,
} from '../support/mfa';
import { requireBuild, ServiceProcess, spawnService } from '../support/processes';

/*
 * Invariant S1 (DESIGN §3) across processes: two instances of the built
 * service on one DATA_DIR, N users with a started TOTP enrollment each, L < N
 * free seats, all N confirmations fired at once and split between the two
 * instances. Exactly L get a seat and a factor, the N - L others are told
 * `license-exhausted` and bypass MFA. Each round uses a fresh firm.
 */

const USERS = 12;
/** Free seats per round: a few shapes of the race (one seat, most of them, ...). */
const ROUNDS = [5, 1, 7, 3, 11, 5];

describe('seats under concurrent confirmations from two processes (S1)', () => {
  let dir: string;
  let services: ServiceProcess[] = [];
  let apis: Api[] = [];

  beforeAll(async () => {
    requireBuild();
    dir = tempDir('mfa-seats-race-');
    services = [await spawnService(dir), await spawnService(dir)];
    apis = services.map((service) => new Api(service.url));
  }, 60_000);

  afterAll(async () => {
    await Promise.all(services.map((service) => service.stop()));
    rmSync(dir, { recursive: true, force: true });
  });

  it.each(ROUNDS.map((seats, round) => [round, seats]))(
    'round %i: %i free seats, 12 simultaneous confirmations give exactly that many seats',
    async (round, seats) => {
      const firmId = `race-${round}`;
      const users = Array.from({ length: USERS }, (_, i) => `u-${i}`);
      await activeFirm(apis[0], firmId, seats);
      await Promise.all(users.map((userId, i) => registerUser(apis[i % 2], firmId, userId)));
      const started = await Promise.all(
        users.map(async (userId, i) => {
          const answer = await apis[(i + 1) % 2].post(
            `${mfaPath(firmId, userId)}/totp/enrollment`,
            host,
            {},
          );
          expectOk(answer, 201);
          return {
            userId,
            enrollmentId: answer.body.enrollmentId as string,
            secret: secretOf(answer.body.otpauthUri as string),
          };
        }),
      );

      // Codes from oathtool, computed before the burst so that nothing delays one request.
      const now = new Date();
      const requests = started.map(({ userId, enrollmentId, secret }) => ({
        userId,
        path: `${mfaPath(firmId, userId)}/totp/enrollment/${enrollmentId}/confirm`,
        code: oathtool(secret, now),
      }));
      const answers: Array<ApiResponse & { userId: string }> = await Promise.all(
        requests.map(async ({ userId, path, code }, i) => ({
          userId,
          ...(await apis[i % 2].post(path, host, { code })),
        })),
      );

      const winners = answers.filter((a) => a.status === 200).map((a) => a.userId);
      const losers = answers.filter((a) => a.status !== 200);
      const unexpected = losers.filter(
        (a) => a.status !== 409 || a.body?.type !== '/problems/license-exhausted',
      );
      expect(unexpected.map((a) => `${a.userId}: ${a.status} ${a.text}`)).toEqual([]);
      expect(winners).toHaveLength(seats);
      expect(losers).toHaveLength(USERS - seats);
      // Both instances served winners or losers: the race really spanned two processes.
      expect(new Set(answers.map((_, i) => i % 2)).size).toBe(2);

      // The log: exactly `seats` seats taken, all by winners, and the factors match the seats.
      const log = (await readLog(dir)).filter((e) => e.metadata.firmId === firmId);
      const assigned = log.filter((e) => e.type === 'SeatAssigned');
      expect(assigned).toHaveLength(seats);
      expect(log.filter((e) => e.type === 'SeatReleased')).toHaveLength(0);
      const seatHolders = new Set(assigned.map((e) => userOf(e)));
      const confirmed = new Set(
        log.filter((e) => e.type === 'FactorConfirmed').map((e) => userOf(e)),
      );
      expect(seatHolders.size).toBe(seats);
      expect([...seatHolders].sort()).toEqual([...winners].sort());
      expect([...confirmed].sort()).toEqual([...winners].sort());
      expect(maxSeatsInUse(log)).toBe(seats);

      // Login decisions, asked of either instance: winners verify, the others bypass.
      const decisions = await Promise.all(
        users.map(async (userId, i) => {
          const answer = await apis[i % 2].get(
            `${mfaPath(firmId, userId)}/login-requirement`,
            host,
          );
          expectOk(answer);
          return [userId, answer.body.decision as string] as const;
        }),
      );
      for (const [userId, decision] of decisions) {
        expect([userId, decision]).toEqual([
          userId,
          winners.includes(userId) ? 'verify' : 'bypass',
        ]);
      }
    },
    60_000,
  );
});

function userOf(event: RecordedEvent): string {
  return event.data.userId as string;
}

/** The largest number of seat holders at any point of the firm's subscription stream. */
function maxSeatsInUse(log: RecordedEvent[]): number {
  const holders = new Set<string>();
  let max = 0;
  for (const event of log) {
    if (event.type === 'SeatAssigned') holders.add(userOf(event));
    if (event.type === 'SeatReleased') holders.delete(userOf(event));
    max = Math.max(max, holders.size);
  }
  return max;
}
