import { assertNever, Decider, DecisionContext, eventTypesOf } from '../shared/decider';
import { conflict } from '../shared/domain-error';

/*
 * One security key, one user (DESIGN §2.4: "A credential belongs to one
 * user"). Every WebAuthn credential id registered in a firm has a claim
 * stream, `securitykey-{firm}/{hash of the credential id}`, and a
 * registration appends its claim in the same atomic append as the factor and
 * the seat. The claim stream's expected revision is what makes the rule hold
 * when two users of the firm register the same key at the same moment: one
 * append wins, the other decides again and is refused.
 *
 * A claim stays with its owner while the owner still has the key among its
 * factors; once the owner was reset or deactivated (the key destroyed with the
 * generation), the key may be claimed again. Whether the owner still has it
 * is read from the owner's stream by the caller (`ownerStillHolds`).
 */

export interface SecurityKeyOwner {
  userId: string;
  generation: number;
  factorId: string;
}

export interface SecurityKeyClaimState {
  owner: SecurityKeyOwner | null;
}

export type SecurityKeyClaimEvent = {
  type: 'SecurityKeyClaimed';
  data: SecurityKeyOwner & { credentialId: string; claimedAt: string };
};

export type SecurityKeyClaimCommand = {
  type: 'ClaimSecurityKey';
  credentialId: string;
  claimant: SecurityKeyOwner;
  /** The current owner (if any, and not the claimant) still has this key among its factors. */
  ownerStillHolds: boolean;
};

export const securityKeyClaimDecider: Decider<
  SecurityKeyClaimCommand,
  SecurityKeyClaimEvent,
  SecurityKeyClaimState,
  DecisionContext
> = {
  eventTypes: eventTypesOf<SecurityKeyClaimEvent['type']>({ SecurityKeyClaimed: true }),

  initialState: () => ({ owner: null }),

  decide(command, state, { now }) {
    switch (command.type) {
      case 'ClaimSecurityKey': {
        const { owner } = state;
        const { claimant } = command;
        if (
          owner &&
          owner.userId === claimant.userId &&
          owner.generation === claimant.generation &&
          owner.factorId === claimant.factorId
        ) {
          return [];
        }
        if (owner && owner.userId !== claimant.userId && command.ownerStillHolds) {
          throw conflict(
            'credential-registered-to-another-user',
            'This security key is already registered to another user of the firm; a key belongs to one user.',
          );
        }
        return [
          {
            type: 'SecurityKeyClaimed',
            data: { ...claimant, credentialId: command.credentialId, claimedAt: now },
          },
        ];
      }
      default:
        return assertNever(command.type);
    }
  },

  evolve(_state, event) {
    switch (event.type) {
      case 'SecurityKeyClaimed': {
        const { userId, generation, factorId } = event.data;
        return { owner: { userId, generation, factorId } };
      }
      default:
        return assertNever(event.type);
    }
  },
};
