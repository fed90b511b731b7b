import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { CommandEnvelope, CommandHandler } from '../../src/command-handling/command-handler';
import { SqliteKeyStore } from '../../src/crypto/sqlite-key-store';
import { RegisteredUser, userDecider } from '../../src/directory/user.decider';
import { SeatKeeper } from '../../src/enrollment/seat-keeper';
import { factorIdOf } from '../../src/enrollment/mfa.decider';
import {
  ConfirmationContext,
  decideConfirmation,
} from '../../src/enrollment/seats-and-factors.decision';
import { enablementDecider } from '../../src/enablement/enablement.decider';
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

  it('a confirmation relying on a seat the keeper frees meanwhile decides again: no factor without a seat', async () => {
    // Issue 11 item 6, the interleaving that broke S2 for good: `a` holds a seat of its current
    // generation for a security-key enrollment that never got its key (a crash on a store
    // without atomic appends). `a` now confirms another enrollment, deciding on a snapshot in
    // which it holds that seat (so it takes none); before its append, the keeper (another
    // process) frees the seat and `b` takes the last one.
    const licenses = 2;
    await commands.handle(
      streams.subscription(FIRM),
      subscriptionDecider,
      { type: 'ChangeLicenseCount', licenseCount: licenses, force: false },
      envelope(),
    );
    for (const userId of ['a', 'b', 'z']) await register(userId);
    await enroll('z', 'z-0');
    const generation = (await user('a')).mfa.generation;
    await commands.handle(
      streams.user(FIRM, 'a'),
      userDecider,
      {
        type: 'StartWebAuthnRegistration',
        userId: 'a',
        enrollmentId: 'a-key',
        label: 'key',
        generation,
        challenge: 'c',
        expiresAt: new Date(Date.now() + 600_000).toISOString(),
        eligibility: { mfaEnabled: true, holdsSeat: false, seatAvailable: true },
      },
      envelope(),
    );
    await assignSeat('a', generation, 'a-key');
    await start('a', 'a-app');
    await start('b', 'b-app');

    const otherProcess = new CommandHandler(store, { now: () => new Date() });
    const otherKeeper = new SeatKeeper(otherProcess, keys);
    const enablement = { ...enablementDecider.initialState(), caseManagers: true };
    let interleaved = false;
    const confirmation = commands.handleAcross(
      {
        subscription: { streamId: streams.subscription(FIRM), decider: subscriptionDecider },
        user: { streamId: streams.user(FIRM, 'a'), decider: userDecider },
      },
      (states, context: ConfirmationContext) => {
        return decideConfirmation(
          states,
          { userId: 'a', enrollmentId: 'a-app', generation },
          context,
        );
      },
      envelope(),
      async (now) => {
        if (!interleaved) {
          interleaved = true;
          // Between the confirmation's reads and its append:
          await otherKeeper.reconcile(FIRM, 'a', envelope());
          expect((await seats()).has('a')).toBe(false);
          await otherProcess.handle(
            streams.subscription(FIRM),
            subscriptionDecider,
            { type: 'AssignSeat', userId: 'b', generation: 0, enrollmentId: 'b-app' },
            envelope(),
          );
          await otherProcess.handle(
            streams.user(FIRM, 'b'),
            userDecider,
            {
              type: 'ConfirmFactor',
              userId: 'b',
              enrollmentId: 'b-app',
              factorId: factorIdOf('b-app'),
              generation: 0,
              completing: false,
            },
            envelope(),
          );
        }
        return { now, enablement };
      },
    );
    // The confirmation decided again on the new state: no seat is free, so it is refused.
    await expect(confirmation).rejects.toMatchObject({ code: 'license-exhausted' });
    expect(interleaved).toBe(true);
    expect((await user('a')).mfa.factors.size).toBe(0);

    // S2: every seat holder has a factor, every user with a factor holds a seat.
    const holders = [...(await seats()).keys()].sort();
    const enrolled = [];
    for (const userId of ['a', 'b', 'z']) {
      if ((await user(userId)).mfa.factors.size > 0) enrolled.push(userId);
    }
    expect(holders).toEqual(['b', 'z']);
    expect(enrolled).toEqual(holders);
  });

  it('records a repair that cannot be made instead of only logging it', async () => {
    // A factor without a seat in a full firm (history written by a crash on a store without
    // atomic appends): the keeper can give no seat, and says so in the log.
    await commands.handle(
      streams.subscription(FIRM),
      subscriptionDecider,
      { type: 'ChangeLicenseCount', licenseCount: 1, force: false },
      envelope(),
    );
    for (const userId of ['a', 'b']) await register(userId);
    await enroll('a', 'a-0');
    const generation = await start('b', 'b-0');
    await confirm('b', generation, 'b-0');
    await keeper.reconcile(FIRM, 'b', envelope());
    await keeper.reconcile(FIRM, 'b', envelope());
    const failures = (await store.readStream(streams.subscription(FIRM))).filter(
      (event) => event.type === 'SeatRepairFailed',
    );
    expect(failures.map((event) => event.data)).toEqual([
      expect.objectContaining({ userId: 'b', generation: 0, reason: 'license-exhausted' }),
    ]);
    // A seat frees up: the next repair gives it, and the failure is closed.
    await commands.handle(
      streams.subscription(FIRM),
      subscriptionDecider,
      { type: 'ChangeLicenseCount', licenseCount: 2, force: false },
      envelope(),
    );
    await keeper.reconcile(FIRM, 'b', envelope());
    const subscription = (await commands.load(streams.subscription(FIRM), subscriptionDecider))
      .state;
    expect(subscription.seatHolders.has('b')).toBe(true);
    expect(subscription.seatRepairsFailed.size).toBe(0);
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
