import { Inject } from '@nestjs/common';
import { Command, CommandHandler as HandlesCommand, ICommandHandler } from '@nestjs/cqrs';
import { CommandEnvelope, CommandHandler } from '../command-handling/command-handler';
import { shredRetiredKeys } from '../crypto/crypto-shredding';
import { KEY_STORE, KeyStore } from '../crypto/key-store.port';
import { decideDeactivation, userAndSeats } from '../enrollment/seats-and-factors.decision';
import { streams } from '../shared/ids';
import { corporationDecider } from './corporation.decider';
import { DeactivationReason, DirectoryCommand, userDecider, UserState } from './user.decider';

/** What the directory's commands answer about a user. */
export function userView(userId: string, state: UserState) {
  if (state.status === 'unregistered') return { userId, status: state.status };
  return {
    userId,
    status: state.status,
    ...state.profile,
    enrolled: state.mfa.factors.size > 0,
  };
}

export type UserAnswer = ReturnType<typeof userView> & { position: string };

/** Register, update or reactivate a user of the host (its own stream). */
export class DecideUser extends Command<UserAnswer> {
  constructor(
    readonly firmId: string,
    readonly userId: string,
    readonly command: Exclude<DirectoryCommand, { type: 'DeactivateUser' }>,
    readonly envelope: CommandEnvelope,
  ) {
    super();
  }
}

/**
 * Deactivate a user (DESIGN §2.3) and recycle its seat (§2.7): the
 * deactivation, the reset of its enrollment and the release of its seat are
 * one atomic append over the user's and the subscription's streams.
 */
export class DeactivateUser extends Command<UserAnswer> {
  constructor(
    readonly firmId: string,
    readonly userId: string,
    readonly reason: DeactivationReason,
    readonly envelope: CommandEnvelope,
  ) {
    super();
  }
}

/** Register or rename a corporate client (its name shows in the admin's picker). */
export class DecideCorporation extends Command<{
  position: string;
  corporationId: string;
  name: string;
}> {
  constructor(
    readonly firmId: string,
    readonly corporationId: string,
    readonly name: string,
    readonly envelope: CommandEnvelope,
  ) {
    super();
  }
}

@HandlesCommand(DecideUser)
export class DecideUserHandler implements ICommandHandler<DecideUser> {
  constructor(private readonly commands: CommandHandler) {}

  async execute({ firmId, userId, command, envelope }: DecideUser): Promise<UserAnswer> {
    const outcome = await this.commands.handle(
      streams.user(firmId, userId),
      userDecider,
      command,
      envelope,
    );
    return { position: String(outcome.position), ...userView(userId, outcome.state) };
  }
}

@HandlesCommand(DeactivateUser)
export class DeactivateUserHandler implements ICommandHandler<DeactivateUser> {
  constructor(
    private readonly commands: CommandHandler,
    @Inject(KEY_STORE) private readonly keys: KeyStore,
  ) {}

  async execute({ firmId, userId, reason, envelope }: DeactivateUser): Promise<UserAnswer> {
    const outcome = await this.commands.handleAcross(
      userAndSeats(firmId, userId, 'factor-first'),
      (states, context) => decideDeactivation(states, { userId, reason }, context),
      envelope,
    );
    const user = outcome.states.user;
    if (user.status !== 'unregistered') {
      await shredRetiredKeys(this.keys, firmId, userId, user.mfa.generation);
    }
    return { position: String(outcome.position), ...userView(userId, user) };
  }
}

@HandlesCommand(DecideCorporation)
export class DecideCorporationHandler implements ICommandHandler<DecideCorporation> {
  constructor(private readonly commands: CommandHandler) {}

  async execute({ firmId, corporationId, name, envelope }: DecideCorporation) {
    const outcome = await this.commands.handle(
      streams.corporation(firmId, corporationId),
      corporationDecider,
      { type: 'RegisterOrRenameCorporation', corporationId, name },
      envelope,
    );
    return { position: String(outcome.position), corporationId, name };
  }
}
