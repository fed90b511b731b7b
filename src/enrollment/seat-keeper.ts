import { Inject, Injectable } from '@nestjs/common';
import { CommandEnvelope, CommandHandler } from '../command-handling/command-handler';
import { shredRetiredKeys } from '../crypto/crypto-shredding';
import { KEY_STORE, KeyStore } from '../crypto/key-store.port';
import { userDecider } from '../directory/user.decider';
import { RecordedEvent } from '../event-store/event-store.port';
import type { ProcessManager } from '../projection-engine/process-manager';
import { ProcessManagerProvider } from '../projection-engine/projections.module';
import { DecisionContext } from '../shared/decider';
import { deterministicId } from '../shared/deterministic-id';
import { DomainError } from '../shared/domain-error';
import { streams } from '../shared/ids';
import { subscriptionDecider } from '../subscription/subscription.decider';
import { confirmFactor } from './mfa.decider';
import {
  SeatAndFactorEvents,
  SeatAndFactorStates,
  seatRepairFor,
  userAndSeats,
} from './seats-and-factors.decision';

const HANDLED: ReadonlySet<string> = new Set([
  'SeatAssigned',
  'SeatReleased',
  'FactorConfirmed',
  'EnrollmentReset',
  // A seat may have become free: the repairs that could not be made are tried again.
  'LicenseCountChanged',
  'SubscriptionActivated',
]);

/** Events after which a seat may be free for a user whose repair failed. */
const SEAT_MAY_BE_FREE: ReadonlySet<string> = new Set([
  'SeatReleased',
  'LicenseCountChanged',
  'SubscriptionActivated',
]);

/**
 * Keeps invariant S2 (DESIGN §3) where the commands alone cannot: a user
 * holds a seat exactly while it has a confirmed factor. Every command that
 * moves a seat or a factor appends both in one atomic append
 * (seats-and-factors.decision.ts), so on SQLite and KurrentDB 25.1+ this finds
 * nothing to do. It repairs what a crash left between the two appends on a KurrentDB
 * without atomic multi-stream appends, and history written before them
 * (ADR 0013):
 * - a seat without a factor: the confirmation is completed when its proof was
 *   checked (the seat names a TOTP enrollment, or a key whose attestation was
 *   recorded), else exactly that seat is released;
 * - a factor without a seat: a seat is assigned, or, when none is free, the
 *   failure is recorded as SeatRepairFailed (shown in /health), never only
 *   logged, and tried again whenever a seat may have become free (a release,
 *   a higher license count, a re-activation).
 * Each repair is appended together with a check of both streams' revisions,
 * so it can never undo what a concurrent command has just decided.
 * It also destroys the data keys of generations a reset left (crypto-shredding),
 * again after a crash between the reset and the destruction.
 */
@Injectable()
@ProcessManagerProvider()
export class SeatKeeper implements ProcessManager {
  readonly name = 'seat-keeper';
  readonly handles = [...HANDLED];

  constructor(
    private readonly commands: CommandHandler,
    @Inject(KEY_STORE) private readonly keys: KeyStore,
  ) {}

  async handle(event: RecordedEvent): Promise<void> {
    if (!HANDLED.has(event.type)) return;
    const { firmId } = event.metadata;
    // Derived from the event (and the user): handling it again after a crash appends nothing twice.
    const envelope = (userId: string): CommandEnvelope => ({
      commandId: deterministicId('seat-keeper', event.metadata.eventId, userId),
      firmId,
      actor: { id: 'seat-keeper', role: 'system' },
      correlationId: event.metadata.correlationId,
      causationId: event.metadata.eventId,
    });
    const userId = event.data.userId;
    if (typeof userId === 'string') {
      if (event.type === 'EnrollmentReset') {
        await shredRetiredKeys(this.keys, firmId, userId, Number(event.data.generation));
      }
      await this.reconcile(firmId, userId, envelope(userId));
    }
    if (SEAT_MAY_BE_FREE.has(event.type)) {
      const { state } = await this.commands.load(streams.subscription(firmId), subscriptionDecider);
      for (const waiting of state.seatRepairsFailed.keys()) {
        await this.reconcile(firmId, waiting, envelope(waiting));
      }
    }
  }

  /**
   * Brings one user's seat in line with its factors. Returns the position of
   * the last event appended (the streams' latest position when nothing changed).
   */
  async reconcile(firmId: string, userId: string, envelope: CommandEnvelope): Promise<bigint> {
    const outcome = await this.commands.handleAcross(
      userAndSeats(firmId, userId, 'seat-first'),
      (states, context) => repair(states, userId, context),
      envelope,
    );
    return outcome.position;
  }
}

function repair(
  states: SeatAndFactorStates,
  userId: string,
  context: DecisionContext,
): SeatAndFactorEvents {
  const plan = seatRepairFor(states, userId);
  switch (plan.kind) {
    case 'none':
      return {};
    case 'release':
      return {
        subscription: subscriptionDecider.decide(
          { type: 'ReleaseSeat', userId, reason: plan.reason, seat: plan.seat },
          states.subscription,
          context,
        ),
      };
    case 'complete':
      return {
        user: userDecider.decide(
          confirmFactor({
            userId,
            enrollmentId: plan.enrollmentId,
            generation: plan.generation,
            completing: true,
          }),
          states.user,
          context,
        ),
      };
    case 'assign':
      try {
        return {
          subscription: subscriptionDecider.decide(
            {
              type: 'AssignSeat',
              userId,
              generation: plan.generation,
              enrollmentId: plan.enrollmentId,
            },
            states.subscription,
            context,
          ),
        };
      } catch (error) {
        if (!(error instanceof DomainError)) throw error;
        // No seat to give (licenses exhausted, subscription cancelled): S2 is broken for this
        // user until one frees up. It must be seen, so it is recorded.
        return {
          subscription: subscriptionDecider.decide(
            {
              type: 'RecordSeatRepairFailure',
              userId,
              generation: plan.generation,
              reason: error.code,
            },
            states.subscription,
            context,
          ),
        };
      }
    default: {
      const unknown: never = plan;
      return unknown;
    }
  }
}
