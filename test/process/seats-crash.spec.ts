import { rmSync } from 'node:fs';
import type { RecordedEvent } from '../../src/event-store/event-store.port';
import { Api, readLog, tempDir } from '../support/harness';
import {
  activeFirm,
  host,
  mfaPath,
  oathtool,
  registerUser,
  secretOf,
  superuserOf,
} from '../support/mfa';
import { requireBuild, ServiceProcess, spawnService } from '../support/processes';

/*
 * Invariants S1 and S2 (DESIGN §3) when the process dies at any moment.
 * Workers confirm TOTP enrollments, reset users (superuser) and deactivate
 * and reactivate them (host) at random, on random users, concurrently; the
 * service is SIGKILLed at random moments and restarted on the same DATA_DIR.
 * Once the last instance is quiet (its process managers and projections at
 * the head of the log), the events alone must show that:
 *  - S1: at no point of the subscription stream did seat holders exceed the
 *    license count;
 *  - S2: seat holders are exactly the users with a confirmed factor since
 *    their last reset, each seat of the user's current generation;
 * and every user's login decision must agree with that (verify ⇔ enrolled).
 *
 * Randomness is seeded: SEATS_CRASH_SEED=<seed> replays the same kill moments
 * and the same choice of actions (the interleaving of the workers still
 * depends on timing). The seed is in the test's name and in every failure.
 */

const SEED = Number(process.env.SEATS_CRASH_SEED ?? Math.floor(Math.random() * 2 ** 31));
const FIRM = 'crash';
const LICENSES = 5;
const USERS = Array.from({ length: 12 }, (_, i) => `u-${i}`);
const KILLS = Number(process.env.SEATS_CRASH_KILLS ?? 5);
const WORKERS = 6;
/** Random run time of each instance before its SIGKILL, in ms. */
const RUN_MS = { min: 250, max: 2000 };
/** How long the last instance may take to catch up once the writers are gone. */
const QUIET_DEADLINE_MS = 20_000;
/**
 * A restarted instance takes over the seat keeper once the killed one's lease
 * expires (docs/decisions/0014): short leases keep the kills from slowing the test down.
 */
const LEASES = { PROCESS_LEASE_SECONDS: '2' };

const superuser = superuserOf(FIRM);
type Action = 'enroll' | 'reset' | 'reset-and-enroll' | 'deactivate' | 'reactivate';
const ACTIONS: Array<[Action, number]> = [
  ['enroll', 45],
  ['reset', 10],
  // A reset racing a new enrollment of the same user: the seat keeper's hardest case.
  ['reset-and-enroll', 10],
  ['deactivate', 15],
  ['reactivate', 20],
];

describe(`seats survive SIGKILL at random moments (S1, S2) — seed ${SEED}`, () => {
  let dir: string;
  let service: ServiceProcess | undefined;

  beforeAll(() => requireBuild());
  beforeEach(() => (dir = tempDir('mfa-seats-crash-')));
  afterEach(async () => {
    await service?.stop('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  it('after every crash and the catch-up, the log and the login decisions agree on the seats', async () => {
    service = await spawnService(dir, LEASES);
    await activeFirm(new Api(service.url), FIRM, LICENSES);
    for (const userId of USERS) await registerUser(new Api(service.url), FIRM, userId);

    const run = await workWithKills(
      () => service!,
      async () => (service = await spawnService(dir, LEASES)),
    );
    try {
      await checkSeats(dir, new Api(service.url), run);
    } catch (error) {
      // Everything needed to replay the run: the seed, the kill moments, what the workers got.
      if (error instanceof Error) error.message += `\n\n${run.trail.join('\n')}`;
      throw error;
    }
  }, 180_000);
});

interface Run {
  trail: string[];
  statuses: Map<string, number>;
  confirmedFactors: string[];
}

/** Workers act on random users while each instance is SIGKILLed after a random time, then restarted. */
async function workWithKills(
  current: () => ServiceProcess,
  restart: () => Promise<ServiceProcess>,
): Promise<Run> {
  const killRandom = mulberry32(SEED);
  const workRandom = mulberry32(SEED ^ 0x5eed);
  const run: Run = { trail: [`seed ${SEED}`], statuses: new Map(), confirmedFactors: [] };
  const count = (key: string) => run.statuses.set(key, (run.statuses.get(key) ?? 0) + 1);
  for (let kill = 1; kill <= KILLS; kill++) {
    const runMs = RUN_MS.min + Math.floor(killRandom() * (RUN_MS.max - RUN_MS.min));
    run.trail.push(`instance ${kill}: SIGKILL after ${runMs} ms`);
    const api = new Api(current().url);
    let alive = true;
    const workers = Array.from({ length: WORKERS }, async () => {
      while (alive) {
        const userId = USERS[Math.floor(workRandom() * USERS.length)];
        const action = pick(workRandom());
        try {
          await act(api, action, userId, count, run.confirmedFactors);
        } catch {
          // The process died under the request: its answer is lost, the log decides.
          count(`${action} no-answer`);
        }
      }
    });
    // Not a wait for state: this is the random moment of the crash.
    await new Promise((resolve) => setTimeout(resolve, runMs));
    alive = false;
    await current().stop('SIGKILL');
    await Promise.all(workers);
    await restart();
  }
  run.trail.push(`answers: ${JSON.stringify(Object.fromEntries(run.statuses))}`);
  return run;
}

/** S1 and S2 from the events alone, then the login decisions and the usage read model. */
async function checkSeats(dir: string, api: Api, run: Run): Promise<void> {
  // The last instance runs alone, with no writer: wait until it has caught up with the log.
  const head = await quiet(api);
  const log = await readLog(dir);
  expect(String(log[log.length - 1].position)).toBe(String(head));
  const firmLog = log.filter((e) => e.metadata.firmId === FIRM);
  if (process.env.SEATS_CRASH_VERBOSE) console.log(run.trail.join('\n'), `\n${log.length} events`);

  // The workload did go through every path (a workload that did nothing proves nothing).
  const types = new Set(firmLog.map((e) => e.type));
  expect(
    ['SeatAssigned', 'SeatReleased', 'FactorConfirmed', 'UserReactivated'].filter(
      (t) => !types.has(t),
    ),
  ).toEqual([]);
  const triggers = new Set(
    firmLog.filter((e) => e.type === 'EnrollmentReset').map((e) => e.data.trigger),
  );
  expect([...triggers].sort()).toEqual(['deactivation', 'superuser']);
  // No answer was a server error.
  expect([...run.statuses.keys()].filter((key) => / 5\d\d$/.test(key))).toEqual([]);

  // S1 at every point of the subscription stream.
  const seats = foldSeats(firmLog.filter((e) => e.streamId === `subscription-${FIRM}`));
  expect(seats.violations).toEqual([]);

  // S2 once quiet: the seat holders are exactly the users with a factor since their last
  // reset, each holding the seat of its current generation.
  const users = new Map(
    USERS.map((userId) => [
      userId,
      foldUser(firmLog.filter((e) => e.streamId === `user-${FIRM}/${userId}`)),
    ]),
  );
  const enrolled = USERS.filter((userId) => users.get(userId)!.factors.size > 0);
  expect([...seats.holders.keys()].sort()).toEqual(enrolled.sort());
  for (const [userId, generation] of seats.holders) {
    expect({ userId, generation }).toEqual({ userId, generation: users.get(userId)!.generation });
  }
  // Every confirmation answered 200 is in the log (it may have been reset since).
  const everConfirmed = new Set(
    firmLog.filter((e) => e.type === 'FactorConfirmed').map((e) => e.data.factorId),
  );
  expect(run.confirmedFactors.filter((factorId) => !everConfirmed.has(factorId))).toEqual([]);

  // The login decisions agree: verify ⇔ enrolled; inactive users are off.
  const free = seats.holders.size < seats.licenseCount;
  for (const userId of USERS) {
    const user = users.get(userId)!;
    const expected = !user.active
      ? 'off'
      : user.factors.size > 0
        ? 'verify'
        : free
          ? 'enroll'
          : 'bypass';
    const answer = await api.get(`${mfaPath(FIRM, userId)}/login-requirement`, host);
    expect({ userId, status: answer.status, decision: answer.body.decision }).toEqual({
      userId,
      status: 200,
      decision: expected,
    });
  }
  // And the usage read model, once it has applied the head, counts the same seats.
  const usage = await api.get(`/v1/firms/${FIRM}/mfa/usage?minPosition=${head}`, superuser);
  expect(usage.status).toBe(200);
  expect(usage.body).toMatchObject({ licenseCount: LICENSES, seatsInUse: seats.holders.size });
}

async function act(
  api: Api,
  action: Action,
  userId: string,
  count: (key: string) => void,
  confirmed: string[],
): Promise<void> {
  const base = mfaPath(FIRM, userId);
  switch (action) {
    case 'enroll': {
      const started = await api.post(`${base}/totp/enrollment`, host, {});
      count(`start ${started.status}`);
      if (started.status !== 201) return;
      const code = oathtool(secretOf(started.body.otpauthUri as string), new Date());
      const answer = await api.post(
        `${base}/totp/enrollment/${started.body.enrollmentId}/confirm`,
        host,
        { code },
      );
      count(`confirm ${answer.status}`);
      if (answer.status === 200) confirmed.push(answer.body.factorId as string);
      return;
    }
    case 'reset': {
      const answer = await api.post(`${base}/reset`, superuserOf(FIRM), {
        reason: 'lost phone',
      });
      count(`reset ${answer.status}`);
      return;
    }
    case 'reset-and-enroll': {
      await Promise.all([
        act(api, 'reset', userId, count, confirmed),
        act(api, 'enroll', userId, count, confirmed),
      ]);
      return;
    }
    case 'deactivate': {
      const answer = await api.post(`/v1/firms/${FIRM}/users/${userId}/deactivate`, host, {
        reason: 'deleted',
      });
      count(`deactivate ${answer.status}`);
      return;
    }
    case 'reactivate': {
      const answer = await api.post(`/v1/firms/${FIRM}/users/${userId}/reactivate`, host, {});
      count(`reactivate ${answer.status}`);
      return;
    }
  }
}

interface HealthBody {
  eventStore: { headPosition: string };
  projections: Array<{ name: string; status: string; position: string }>;
  processManagers: Array<{ name: string; status: string; position: string; attempts: number }>;
  mail: { pending: number };
}

/**
 * Waits until every process manager and projection of the instance has
 * applied the head of the log and no invitation email is waiting to be sent
 * (nothing else writes any more, so the head only moves when a process
 * manager appends, the mailer's EmailSent included). The engine has no hook
 * for process managers, so this polls /health, with a deadline.
 */
async function quiet(api: Api): Promise<bigint> {
  const deadline = Date.now() + QUIET_DEADLINE_MS;
  let last: HealthBody | undefined;
  while (Date.now() < deadline) {
    const answer = await api.get<HealthBody>('/health');
    last = answer.body;
    const head = last.eventStore.headPosition;
    const consumers = [...last.projections, ...last.processManagers];
    if (
      answer.status === 200 &&
      last.processManagers.length > 0 &&
      last.mail.pending === 0 &&
      consumers.every((c) => c.position === head && c.status === 'live')
    ) {
      return BigInt(head);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(
    `The service did not catch up within ${QUIET_DEADLINE_MS} ms: ${JSON.stringify(last)}`,
  );
}

/** The seats at the end of the subscription stream, and every point where S1 did not hold. */
function foldSeats(events: RecordedEvent[]) {
  let licenseCount = 0;
  const holders = new Map<string, number>();
  const violations: string[] = [];
  for (const event of events) {
    const { data } = event;
    switch (event.type) {
      case 'SubscriptionActivated':
      case 'LicenseCountChanged':
        licenseCount = Number(data.licenseCount);
        break;
      case 'SeatAssigned':
        holders.set(data.userId as string, Number(data.generation ?? 0));
        break;
      case 'SeatReleased':
        holders.delete(data.userId as string);
        break;
    }
    if (holders.size > licenseCount) {
      violations.push(`position ${event.position}: ${holders.size} seats > ${licenseCount}`);
    }
  }
  return { licenseCount, holders, violations };
}

/** A user's activity and its factors confirmed since the last reset, from its stream alone. */
function foldUser(events: RecordedEvent[]) {
  let active = false;
  let generation = 0;
  let factors = new Set<string>();
  for (const event of events) {
    switch (event.type) {
      case 'UserRegistered':
      case 'UserReactivated':
        active = true;
        break;
      case 'UserDeactivated':
        active = false;
        break;
      case 'FactorConfirmed':
        factors.add(event.data.factorId as string);
        break;
      case 'EnrollmentReset':
        factors = new Set();
        generation = Number(event.data.generation);
        break;
    }
  }
  return { active, generation, factors };
}

function pick(random: number): Action {
  const total = ACTIONS.reduce((sum, [, weight]) => sum + weight, 0);
  let at = random * total;
  for (const [action, weight] of ACTIONS) {
    if (at < weight) return action;
    at -= weight;
  }
  return ACTIONS[0][0];
}

/** A small seeded generator (mulberry32): the same seed gives the same sequence. */
function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
