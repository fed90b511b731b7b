import { Inject, Injectable, Logger } from '@nestjs/common';
import { CommandEnvelope, CommandHandler } from '../command-handling/command-handler';
import { KEY_STORE, KeyStore } from '../crypto/key-store.port';
import { userDecider } from '../directory/user.decider';
import { RecordedEvent } from '../event-store/event-store.port';
import { deterministicId } from '../shared/deterministic-id';
import { DomainError } from '../shared/domain-error';
import { streams } from '../shared/ids';
import { subscriptionDecider } from '../subscription/subscription.decider';

/** The factor id a confirmation gives: derived, so a confirmation finished twice gives one factor. */
export const factorIdOf = (enrollmentId: string) => deterministicId('factor', enrollmentId);

const HANDLED: ReadonlySet<string> = new Set([
  'SeatAssigned',
  'SeatReleased',
  'FactorConfirmed',
  'EnrollmentReset',
]);

/**
 * Keeps invariant S2 (DESIGN §3): a user holds a seat exactly while it has a
 * confirmed factor. Seats live in the firm's subscription stream and factors
 * in the user's stream, so a confirmation, a reset and a deactivation each
 * append to two streams, seat first on the way in and factors first on the way
 * out. The commands call `reconcile` themselves right after; this process
 * manager calls it again for every seat or factor event in the log, so a crash
 * between the two appends is repaired once it has caught up
 * (docs/decisions/0006).
 */
@Injectable()
export class SeatKeeper {
  readonly name = 'seat-keeper';
  readonly handles = [...HANDLED];
  private readonly logger = new Logger('SeatKeeper');

  constructor(
    private readonly commands: CommandHandler,
    @Inject(KEY_STORE) private readonly keys: KeyStore,
  ) {}

  async handle(event: RecordedEvent): Promise<void> {
    if (!HANDLED.has(event.type)) return;
    const userId = event.data.userId;
    if (typeof userId !== 'string') return;
    const { firmId } = event.metadata;
    const envelope: CommandEnvelope = {
      // Derived from the event: handling it again after a crash appends nothing twice.
      commandId: deterministicId('seat-keeper', event.metadata.eventId),
      firmId,
      actor: { id: 'seat-keeper', role: 'system' },
      correlationId: event.metadata.correlationId,
      causationId: event.metadata.eventId,
    };
    if (event.type === 'EnrollmentReset') {
      await this.keys.destroyKeysBelow(firmId, userId, Number(event.data.generation));
    }
    try {
      await this.reconcile(firmId, userId, envelope);
    } catch (error) {
      // The state moved on under us; a later event of this user reconciles again. Losing the
      // race for a stream too often (concurrency-conflict) is not that: the runner retries it.
      if (error instanceof DomainError && error.code !== 'concurrency-conflict') {
        this.logger.warn(`Seat of ${firmId}/${userId} left as is: ${error.code}`);
        return;
      }
      throw error;
    }
  }

  /** After a reset or a deactivation: destroy the old keys and free the seat. */
  async afterReset(firmId: string, userId: string, envelope: CommandEnvelope): Promise<bigint> {
    const { state } = await this.commands.load(streams.user(firmId, userId), userDecider);
    if (state.status !== 'unregistered') {
      await this.keys.destroyKeysBelow(firmId, userId, state.mfa.generation);
    }
    return this.reconcile(firmId, userId, envelope);
  }

  /**
   * Brings one user's seat in line with its factors. Returns the position of
   * the last event appended (0n when nothing needed to change).
   */
  async reconcile(firmId: string, userId: string, envelope: CommandEnvelope): Promise<bigint> {
    const subscriptionStream = streams.subscription(firmId);
    const [user, subscription] = await Promise.all([
      this.commands.load(streams.user(firmId, userId), userDecider),
      this.commands.load(subscriptionStream, subscriptionDecider),
    ]);
    const seat = subscription.state.seatHolders.get(userId);
    const release = async (belowGeneration: number, reason: string) =>
      (
        await this.commands.handle(
          subscriptionStream,
          subscriptionDecider,
          { type: 'ReleaseSeat', userId, reason, belowGeneration },
          envelope,
        )
      ).position;

    if (user.state.status === 'unregistered') {
      return seat ? release(Number.MAX_SAFE_INTEGER, 'unknown-user') : 0n;
    }
    const { mfa } = user.state;
    const generation = mfa.generation;

    if (mfa.factors.size > 0) {
      if (seat && seat.generation >= generation) return 0n;
      // Not reachable through the commands (a factor is confirmed after its seat); a safety net.
      this.logger.warn(`User ${firmId}/${userId} has factors but no seat; assigning one`);
      const outcome = await this.commands.handle(
        subscriptionStream,
        subscriptionDecider,
        { type: 'AssignSeat', userId, generation, enrollmentId: null },
        envelope,
      );
      return outcome.position;
    }

    if (!seat) return 0n;
    // The seat of a generation the user has left (a reset whose release has not landed): free
    // that seat only. Releasing below `generation + 1` here would also free the seat that a
    // confirmation of the current generation moves over between our read and our release,
    // leaving its factor without a seat (test/enrollment/seat-keeper.spec.ts).
    if (seat.generation < generation) return release(generation, 'no-confirmed-factor');
    if (seat.enrollmentId) {
      const pending = mfa.pending.get(seat.enrollmentId);
      if (pending && (pending.factorType === 'totp' || pending.verifiedCredential)) {
        // The seat was taken for a checked proof and the process stopped before the factor
        // was recorded: finish the confirmation.
        const outcome = await this.commands.handle(
          streams.user(firmId, userId),
          userDecider,
          {
            type: 'ConfirmFactor',
            userId,
            enrollmentId: seat.enrollmentId,
            factorId: factorIdOf(seat.enrollmentId),
            generation,
            completing: true,
          },
          envelope,
        );
        return outcome.position;
      }
    }
    return release(generation + 1, 'no-confirmed-factor');
  }
}
