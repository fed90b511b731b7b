import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { CommandEnvelope, CommandHandler } from '../../src/command-handling/command-handler';
import { SqliteKeyStore } from '../../src/crypto/sqlite-key-store';
import { RegisteredUser, userDecider } from '../../src/directory/user.decider';
import { factorIdOf, SeatKeeper } from '../../src/enrollment/seat-keeper';
import { SqliteEventStore } from '../../src/event-store/sqlite-event-store';
import { streams } from '../../src/shared/ids';
import { subscriptionDecider } from '../../src/subscription/subscription.decider';
import { TEST_MASTER_KEY, tempDir } from '../support/harness';

/*
 * The seat keeper against a real SQLite log, with the interleavings that a
 * process-level test only hits by luck pinned down: a reconciliation that read
 * the seats just before a confirmation moved the user's seat must not free it.
 */

const FIRM = 'keeper';
const sealed = { keyId: 'k', iv: 'aXY', ciphertext: 'Y3Q', tag: 'dGFn' };

describe('seat keeper', () => {
  let dir: string;
  let store: SqliteEventStore;
  let keys: SqliteKeyStore;
  let commands: CommandHandler;
  let keeper: SeatKeeper;
  let n = 0;
  const envelope = (): CommandEnvelope => {
    const id = `cmd-${++n}`;
    return {
      commandId: id,
      firmId: FIRM,
      actor: { id: 'test', role: 'system' },
      correlationId: id,
    };
  };

  beforeEach(async () => {
    dir = tempDir('mfa-keeper-');
    store = new SqliteEventStore(join(dir, 'events.sqlite'));
    keys = new SqliteKeyStore(join(dir, 'keys.sqlite'), Buffer.from(TEST_MASTER_KEY, 'hex'));
    commands = new CommandHandler(store, { now: () => new Date() });
    keeper = new SeatKeeper(commands, keys);
    const subscription = streams.subscription(FIRM);
    await commands.handle(
      subscription,
      subscriptionDecider,
      { type: 'RequestSubscription', plan: 'standard' },
      envelope(),
    );
    await commands.handle(
      subscription,
      subscriptionDecider,
      { type: 'ActivateSubscription', plan: 'standard', licenseCount: 3 },
      envelope(),
    );
  });

  afterEach(async () => {
    await store.close();
    await keys.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const user = async (userId: string) =>
    (await commands.load(streams.user(FIRM, userId), userDecider)).state as RegisteredUser;
  const seats = async () =>
    (await commands.load(streams.subscription(FIRM), subscriptionDecider)).state.seatHolders;

  async function register(userId: string) {
    await commands.handle(
      streams.user(FIRM, userId),
      userDecider,
      {
        type: 'RegisterOrUpdateUser',
        userId,
        profile: {
          role: 'case-manager',
          corporationId: null,
          name: userId,
          email: `${userId}@firm.example`,
          organization: null,
          billingContact: false,
          firmAdmin: false,
        },
      },
      envelope(),
    );
  }

  async function start(userId: string, enrollmentId: string) {
    const { generation } = (await user(userId)).mfa;
    await commands.handle(
      streams.user(FIRM, userId),
      userDecider,
      {
        type: 'StartTotpEnrollment',
        userId,
        enrollmentId,
        label: 'app',
        generation,
        secret: sealed,
        expiresAt: new Date(Date.now() + 600_000).toISOString(),
        eligibility: { mfaEnabled: true, holdsSeat: false, seatAvailable: true },
      },
      envelope(),
    );
    return generation;
  }

  const assignSeat = (userId: string, generation: number, enrollmentId: string) =>
    commands.handle(
      streams.subscription(FIRM),
      subscriptionDecider,
      { type: 'AssignSeat', userId, generation, enrollmentId },
      envelope(),
    );

  const confirm = (userId: string, generation: number, enrollmentId: string) =>
    commands.handle(
      streams.user(FIRM, userId),
      userDecider,
      {
        type: 'ConfirmFactor',
        userId,
        enrollmentId,
        factorId: factorIdOf(enrollmentId),
        generation,
        completing: false,
      },
      envelope(),
    );

  async function enroll(userId: string, enrollmentId: string) {
    const generation = await start(userId, enrollmentId);
    await assignSeat(userId, generation, enrollmentId);
    await confirm(userId, generation, enrollmentId);
  }

  it('does not free a seat that a confirmation moved to the new generation while it decided', async () => {
    for (const userId of ['a', 'b', 'c', 'd']) await register(userId);
    await enroll('a', 'a-0');
    await enroll('b', 'b-0');

    // A reset of `a` whose process died before the seat was released: a is at generation 1,
    // its seat still of generation 0.
    await commands.handle(
      streams.user(FIRM, 'a'),
      userDecider,
      { type: 'ResetEnrollment', userId: 'a', reason: 'lost phone', trigger: 'superuser' },
      envelope(),
    );
    // `a` enrolls again (a seat is free: 2 of 3 in use) while the seat keeper repairs the reset:
    // the keeper reads the seats, then the confirmation moves a's seat to generation 1.
    const generation = await start('a', 'a-1');
    expect(generation).toBe(1);
    const moved = assignSeat('a', generation, 'a-1');
    const repaired = keeper.reconcile(FIRM, 'a', envelope());
    await Promise.all([moved, repaired]);
    await confirm('a', generation, 'a-1');

    expect((await user('a')).mfa.factors.size).toBe(1);
    expect((await seats()).get('a')).toEqual({ generation: 1, enrollmentId: 'a-1' });

    // The other seats go to c and d; a keeps its own and S2 holds.
    await enroll('c', 'c-0');
    await expect(enroll('d', 'd-0')).rejects.toMatchObject({ code: 'license-exhausted' });
    const log = await store.readAll({ after: 0n, maxCount: 10_000 });
    for (const event of log.filter(
      (e) => e.type === 'FactorConfirmed' || e.type === 'SeatAssigned',
    )) {
      await keeper.handle(event);
    }
    expect([...(await seats()).keys()].sort()).toEqual(['a', 'b', 'c']);
    const enrolled = [];
    for (const userId of ['a', 'b', 'c', 'd']) {
      if ((await user(userId)).mfa.factors.size > 0) enrolled.push(userId);
    }
    expect(enrolled).toEqual(['a', 'b', 'c']);
  });

  it('frees the seat of a generation the user has left', async () => {
    await register('a');
    await enroll('a', 'a-0');
    await commands.handle(
      streams.user(FIRM, 'a'),
      userDecider,
      { type: 'ResetEnrollment', userId: 'a', reason: 'lost phone', trigger: 'superuser' },
      envelope(),
    );
    expect((await seats()).has('a')).toBe(true);
    await keeper.reconcile(FIRM, 'a', envelope());
    expect((await seats()).has('a')).toBe(false);
  });
});
