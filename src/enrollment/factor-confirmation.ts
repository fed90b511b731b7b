import { Injectable } from '@nestjs/common';
import { CommandEnvelope, CommandHandler } from '../command-handling/command-handler';
import { userDecider } from '../directory/user.decider';
import { enablementDecider } from '../enablement/enablement.decider';
import { streams } from '../shared/ids';
import { factorIdOf, type WebAuthnCredential } from './mfa.decider';
import {
  Confirmation,
  ConfirmationContext,
  decideConfirmation,
  userAndSeats,
} from './seats-and-factors.decision';
import { securityKeyClaimDecider } from './security-key-claim.decider';

/**
 * A checked proof becomes a factor: the confirmation, the seat and (for a
 * security key) the key's claim, decided together and appended as one unit
 * (DESIGN §3, S2; ADR 0013). The order of the parts is the order of the
 * appends on a store without atomic ones: the claim and the seat, which can
 * be refused, before the factor; a crash between them leaves a seat the seat
 * keeper completes or frees. Refusals: those of `decideConfirmation`, and 409
 * credential-registered-to-another-user.
 */
@Injectable()
export class FactorConfirmation {
  constructor(private readonly commands: CommandHandler) {}

  confirm(firmId: string, confirmation: Confirmation, envelope: CommandEnvelope) {
    const { userId, credential } = confirmation;
    const seatsAndFactor = userAndSeats(firmId, userId, 'seat-first');
    const context = async (now: string) => ({
      now,
      enablement: (await this.commands.load(streams.enablement(firmId), enablementDecider)).state,
      ownerStillHolds: credential ? await this.ownerStillHolds(firmId, userId, credential) : false,
    });
    if (!credential) {
      return this.commands.handleAcross(
        seatsAndFactor,
        (states, ctx: ConfirmationContext) => decideConfirmation(states, confirmation, ctx),
        envelope,
        context,
      );
    }
    return this.commands.handleAcross(
      {
        claim: {
          streamId: streams.securityKey(firmId, credential.credentialId),
          decider: securityKeyClaimDecider,
        },
        ...seatsAndFactor,
      },
      (states, ctx: ConfirmationContext & { ownerStillHolds: boolean }) => {
        const decided = decideConfirmation(states, confirmation, ctx);
        if (!decided.user?.length) return decided;
        const claim = securityKeyClaimDecider.decide(
          {
            type: 'ClaimSecurityKey',
            credentialId: credential.credentialId,
            claimant: {
              userId,
              generation: confirmation.generation,
              factorId: factorIdOf(confirmation.enrollmentId),
            },
            ownerStillHolds: ctx.ownerStillHolds,
          },
          states.claim,
          ctx,
        );
        return { ...decided, claim };
      },
      envelope,
      context,
    );
  }

  /** Whether another user of the firm has this key among its factors now. */
  private async ownerStillHolds(
    firmId: string,
    userId: string,
    credential: WebAuthnCredential,
  ): Promise<boolean> {
    const { state } = await this.commands.load(
      streams.securityKey(firmId, credential.credentialId),
      securityKeyClaimDecider,
    );
    const owner = state.owner;
    if (!owner || owner.userId === userId) return false;
    const { state: ownerState } = await this.commands.load(
      streams.user(firmId, owner.userId),
      userDecider,
    );
    return (
      ownerState.status !== 'unregistered' &&
      ownerState.mfa.generation === owner.generation &&
      ownerState.mfa.factors.has(owner.factorId)
    );
  }
}
