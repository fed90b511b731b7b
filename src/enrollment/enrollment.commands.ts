import { Inject } from '@nestjs/common';
import {
  Command,
  CommandHandler as HandlesCommand,
  ICommandHandler,
  IQueryHandler,
  Query,
  QueryHandler as HandlesQuery,
} from '@nestjs/cqrs';
import { CommandEnvelope, CommandHandler } from '../command-handling/command-handler';
import { shredRetiredKeys } from '../crypto/crypto-shredding';
import { KEY_STORE, KeyStore } from '../crypto/key-store.port';
import { requireRegistered } from '../directory/user.decider';
import { VerificationHistory } from '../verification/verification-history';
import type { FactorType } from './mfa.decider';
import { decideReset, userAndSeats } from './seats-and-factors.decision';
import { UserFacts } from './user-facts';

/** GET .../mfa/factors (API.md). */
export interface FactorView {
  factorId: string;
  type: FactorType;
  label: string;
  createdAt: string;
  lastUsedAt: string | null;
}

/**
 * POST .../mfa/reset (DESIGN §2.6): every factor of the user stops working at
 * once, the seat is freed in the same append, and the key that sealed the TOTP
 * secrets is destroyed (crypto-shredding).
 */
export class ResetEnrollment extends Command<{ position: string; factorsRemoved: number }> {
  constructor(
    readonly firmId: string,
    readonly userId: string,
    readonly reason: string,
    readonly envelope: CommandEnvelope,
  ) {
    super();
  }
}

/** The user's confirmed factors, with when each last verified a login. */
export class ListFactors extends Query<FactorView[]> {
  constructor(
    readonly firmId: string,
    readonly userId: string,
  ) {
    super();
  }
}

@HandlesCommand(ResetEnrollment)
export class ResetEnrollmentHandler implements ICommandHandler<ResetEnrollment> {
  constructor(
    private readonly commands: CommandHandler,
    @Inject(KEY_STORE) private readonly keys: KeyStore,
  ) {}

  async execute({ firmId, userId, reason, envelope }: ResetEnrollment) {
    const outcome = await this.commands.handleAcross(
      // Factors first: on a store without atomic appends the seat keeper frees a seat left behind.
      userAndSeats(firmId, userId, 'factor-first'),
      (states, context) => decideReset(states, { userId, reason, trigger: 'superuser' }, context),
      envelope,
    );
    const user = outcome.states.user;
    if (user.status !== 'unregistered') {
      await shredRetiredKeys(this.keys, firmId, userId, user.mfa.generation);
    }
    const reset = outcome.events.user.find((event) => event.type === 'EnrollmentReset');
    return {
      position: String(outcome.position),
      factorsRemoved: reset?.type === 'EnrollmentReset' ? reset.data.factorIds.length : 0,
    };
  }
}

@HandlesQuery(ListFactors)
export class ListFactorsHandler implements IQueryHandler<ListFactors> {
  constructor(
    private readonly facts: UserFacts,
    private readonly history: VerificationHistory,
  ) {}

  async execute({ firmId, userId }: ListFactors): Promise<FactorView[]> {
    const user = requireRegistered((await this.facts.of(firmId, userId)).user, userId);
    const { lastUsed } = await this.history.stateOf(firmId, userId, user.mfa.generation);
    return [...user.mfa.factors.values()].map((factor) => ({
      factorId: factor.factorId,
      type: factor.factorType,
      label: factor.label,
      createdAt: factor.createdAt,
      lastUsedAt: lastUsed[factor.factorId] ?? null,
    }));
  }
}
