import { assertNever, Decider, DecisionContext, eventTypesOf } from '../shared/decider';
import { USER_ROLES, UserRole } from '../shared/roles';
import { DomainError, notFound } from '../shared/domain-error';
import {
  decideMfa,
  evolveMfa,
  initialMfaState,
  isMfaEvent,
  MFA_EVENT_TYPES,
  MfaCommand,
  MfaEvent,
  MfaState,
  resetEvent,
} from '../enrollment/mfa.decider';

/*
 * A user of the host application, as the host syncs it to us. We never create
 * users on our own: the host registers, updates, deactivates and reactivates.
 * The user's MFA factors live in the same stream (src/enrollment/mfa.decider.ts),
 * so that deactivating a user resets its enrollment in the same append.
 */

export { USER_ROLES };
export type { UserRole };

export const DEACTIVATION_REASONS = [
  'account-disabled',
  'portal-access-disabled',
  'record-inactivated',
  'deleted',
] as const;
export type DeactivationReason = (typeof DEACTIVATION_REASONS)[number];

/**
 * The firm's staff: case managers and vendor case managers. Invited to enroll
 * by email when MFA starts applying to them (DESIGN §4, §5).
 */
export const STAFF_ROLES: readonly UserRole[] = ['case-manager', 'vendor-case-manager'];

/** Corp users and foreign nationals always belong to a corporation; nobody else does. */
export const rolesWithCorporation: readonly UserRole[] = ['corp-user', 'foreign-national'];

export interface UserProfile {
  role: UserRole;
  corporationId: string | null;
  name: string;
  email: string;
  organization: string | null;
  billingContact: boolean;
  firmAdmin: boolean;
}

/**
 * Whether the license-usage emails go to this user (DESIGN §5): a firm admin
 * of any role, or a case manager flagged as billing contact. The notification
 * policy decides with it, and the mail-directory projection indexes with it.
 */
export function isBillingContact(
  profile: Pick<UserProfile, 'role' | 'billingContact' | 'firmAdmin'>,
): boolean {
  return profile.firmAdmin || (profile.role === 'case-manager' && profile.billingContact);
}

export type DirectoryCommand =
  | { type: 'RegisterOrUpdateUser'; userId: string; profile: UserProfile }
  | { type: 'DeactivateUser'; userId: string; reason: DeactivationReason }
  | { type: 'ReactivateUser'; userId: string };

export type UserCommand = DirectoryCommand | MfaCommand;

export type DirectoryEvent =
  | { type: 'UserRegistered'; data: { userId: string; registeredAt: string } & UserProfile }
  | { type: 'UserProfileUpdated'; data: { userId: string; updatedAt: string } & UserProfile }
  | {
      type: 'UserDeactivated';
      data: { userId: string; reason: DeactivationReason; deactivatedAt: string };
    }
  | { type: 'UserReactivated'; data: { userId: string; reactivatedAt: string } };

export type UserEvent = DirectoryEvent | MfaEvent;

export type RegisteredUser = {
  status: 'active' | 'inactive';
  profile: UserProfile;
  deactivationReason: DeactivationReason | null;
  mfa: MfaState;
};

export type UserState = { status: 'unregistered' } | RegisteredUser;

export const userDecider: Decider<UserCommand, UserEvent, UserState, DecisionContext> = {
  eventTypes: [
    ...eventTypesOf<DirectoryEvent['type']>({
      UserRegistered: true,
      UserProfileUpdated: true,
      UserDeactivated: true,
      UserReactivated: true,
    }),
    ...MFA_EVENT_TYPES,
  ],

  initialState: () => ({ status: 'unregistered' }),

  decide(command, state, { now }) {
    switch (command.type) {
      case 'RegisterOrUpdateUser': {
        requireCorporationMatchesRole(command.profile);
        if (state.status === 'unregistered') {
          return [
            {
              type: 'UserRegistered',
              data: { userId: command.userId, ...command.profile, registeredAt: now },
            },
          ];
        }
        if (sameProfile(state.profile, command.profile)) return [];
        return [
          {
            type: 'UserProfileUpdated',
            data: { userId: command.userId, ...command.profile, updatedAt: now },
          },
        ];
      }

      case 'DeactivateUser': {
        if (state.status === 'unregistered') throw unknownUser(command.userId);
        if (state.status === 'inactive' && state.deactivationReason === command.reason) return [];
        const { mfa } = state;
        // Recycling: a deactivated user's enrollment is reset, which frees its seat.
        const reset =
          mfa.factors.size > 0 || mfa.pending.size > 0
            ? [resetEvent(command.userId, command.reason, 'deactivation', mfa, now)]
            : [];
        return [
          {
            type: 'UserDeactivated',
            data: { userId: command.userId, reason: command.reason, deactivatedAt: now },
          },
          ...reset,
        ];
      }

      case 'ReactivateUser':
        if (state.status === 'unregistered') throw unknownUser(command.userId);
        if (state.status === 'active') return [];
        return [{ type: 'UserReactivated', data: { userId: command.userId, reactivatedAt: now } }];

      default:
        if (state.status === 'unregistered') throw unknownUser(command.userId);
        return decideMfa(command, state.mfa, state.status === 'active', now);
    }
  },

  evolve(state, event) {
    if (isMfaEvent(event)) {
      return state.status === 'unregistered'
        ? state
        : { ...state, mfa: evolveMfa(state.mfa, event) };
    }
    switch (event.type) {
      case 'UserRegistered':
        return {
          status: 'active',
          profile: profileOf(event.data),
          deactivationReason: null,
          mfa: initialMfaState(),
        };
      case 'UserProfileUpdated':
        if (state.status === 'unregistered') return state;
        return { ...state, profile: profileOf(event.data) };
      case 'UserDeactivated':
        if (state.status === 'unregistered') return state;
        return { ...state, status: 'inactive', deactivationReason: event.data.reason };
      case 'UserReactivated':
        if (state.status === 'unregistered') return state;
        return { ...state, status: 'active', deactivationReason: null };
      default:
        return assertNever(event);
    }
  },
};

function requireCorporationMatchesRole(profile: UserProfile): void {
  const needsCorporation = rolesWithCorporation.includes(profile.role);
  if (needsCorporation && profile.corporationId === null) {
    throw new DomainError(
      'corporation-required',
      `A ${profile.role} belongs to a corporation: corporationId is required.`,
      'invalid',
      { errors: [{ field: 'corporationId', message: `required for role ${profile.role}` }] },
    );
  }
  if (!needsCorporation && profile.corporationId !== null) {
    throw new DomainError(
      'corporation-not-allowed',
      `A ${profile.role} does not belong to a corporation: omit corporationId.`,
      'invalid',
      { errors: [{ field: 'corporationId', message: `not allowed for role ${profile.role}` }] },
    );
  }
}

function profileOf(data: UserProfile): UserProfile {
  const { role, corporationId, name, email, organization, billingContact, firmAdmin } = data;
  return { role, corporationId, name, email, organization, billingContact, firmAdmin };
}

function sameProfile(a: UserProfile, b: UserProfile): boolean {
  return (Object.keys(a) as Array<keyof UserProfile>).every((key) => a[key] === b[key]);
}

/** The registered user, or 404 user-not-found. */
export function requireRegistered(user: UserState, userId: string): RegisteredUser {
  if (user.status === 'unregistered') throw unknownUser(userId);
  return user;
}

function unknownUser(userId: string): DomainError {
  return notFound('user-not-found', `User ${userId} is not registered in this firm.`);
}
