import type { UserState } from '../directory/user.decider';
import type { FactorType } from '../enrollment/mfa.decider';
import type { EnablementState } from '../enablement/enablement.decider';
import { userIsMfaEnabled } from '../enrollment/eligibility.decision';
import { seatAvailable, SubscriptionState } from '../subscription/subscription.decider';

/*
 * DESIGN §4: what the host must ask of a user at login. Pure: the three
 * streams' states in, one decision out.
 */

export type LoginDecision = 'verify' | 'enroll' | 'bypass' | 'off';

export interface LoginRequirement {
  decision: LoginDecision;
  methods: FactorType[];
  reason?: string;
  instructions?: string;
}

export function loginRequirement(
  user: UserState,
  subscription: SubscriptionState,
  enablement: EnablementState,
): LoginRequirement {
  if (user.status === 'unregistered') {
    return { decision: 'off', methods: [], reason: 'The user is not known to the MFA service.' };
  }
  if (user.status === 'inactive') {
    return { decision: 'off', methods: [], reason: 'The user is deactivated.' };
  }
  if (subscription.status !== 'active') {
    return { decision: 'off', methods: [], reason: 'The firm has no active MFA subscription.' };
  }
  if (!userIsMfaEnabled(user, subscription, enablement)) {
    return { decision: 'off', methods: [], reason: "MFA is not enabled for the user's role." };
  }
  const factors = [...user.mfa.factors.values()];
  if (factors.length > 0) {
    const methods = (['totp', 'webauthn'] as const).filter((type) =>
      factors.some((factor) => factor.factorType === type),
    );
    return { decision: 'verify', methods };
  }
  if (!seatAvailable(subscription)) {
    return {
      decision: 'bypass',
      methods: [],
      reason:
        'All MFA licenses of the firm are in use: the user may log in with a single factor until a license is free.',
    };
  }
  return {
    decision: 'enroll',
    methods: ['totp', 'webauthn'],
    reason: 'MFA is enabled for the user, who has not enrolled a device or security key yet.',
    instructions:
      'Multi-factor authentication is now required for your account. Enroll your mobile device ' +
      '(scan the QR code with an authenticator app and enter the 6-digit code it shows) or ' +
      'register a security key such as a YubiKey, then use it at every login.',
  };
}
