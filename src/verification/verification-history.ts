import { Inject, Injectable } from '@nestjs/common';
import { CommandHandler } from '../command-handling/command-handler';
import { Clock, CLOCK } from '../shared/clock';
import { streams } from '../shared/ids';
import { currentState, verificationDecider, VerificationState } from './verification.decider';

/**
 * A user's verification stream as of now: the last accepted TOTP step, the
 * failure count and lock, the security keys' counters, when each factor last
 * verified a login. One event is read (the stream's last: ADR 0007).
 */
@Injectable()
export class VerificationHistory {
  constructor(
    private readonly commands: CommandHandler,
    @Inject(CLOCK) private readonly clock: Clock,
  ) {}

  /** The state for the user's current enrollment `generation` (a reset starts a fresh one). */
  async stateOf(firmId: string, userId: string, generation: number): Promise<VerificationState> {
    const { state } = await this.commands.load(
      streams.verification(firmId, userId),
      verificationDecider,
    );
    return currentState(state, generation, this.clock.now().toISOString());
  }
}
