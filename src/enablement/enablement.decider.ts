import { assertNever, Decider, DecisionContext, eventTypesOf } from '../shared/decider';
import { conflict, notFound } from '../shared/domain-error';
import type { SubscriptionStatus } from '../subscription/subscription.decider';
import type { UserRole } from '../shared/roles';

/*
 * Which users the firm's admin has switched MFA on for. Each switch is
 * independent. The two "all corporations" switches and the list of specific
 * corporations are both kept whatever the mode; the mode says which of them is
 * in force, so flipping the mode back does not make the admin retype a list.
 */

export type CorporationMode = 'all' | 'specific';

export interface CorporationSwitches {
  corpUsers: boolean;
  foreignNationals: boolean;
}

export type EnablementCommand =
  | { type: 'SetCaseManagersEnablement'; enabled: boolean }
  | { type: 'SetVendorCaseManagersEnablement'; enabled: boolean }
  | {
      type: 'SetCorporationMode';
      mode: CorporationMode;
      corpUsers?: boolean;
      foreignNationals?: boolean;
    }
  | ({ type: 'SetSpecificCorporation'; corporationId: string } & CorporationSwitches)
  | { type: 'RemoveSpecificCorporation'; corporationId: string };

export type EnablementEvent =
  | { type: 'CaseManagersEnablementChanged'; data: { enabled: boolean; changedAt: string } }
  | { type: 'VendorCaseManagersEnablementChanged'; data: { enabled: boolean; changedAt: string } }
  | {
      type: 'CorporationModeChanged';
      data: { mode: CorporationMode; changedAt: string } & CorporationSwitches;
    }
  | {
      type: 'SpecificCorporationSet';
      data: { corporationId: string; changedAt: string } & CorporationSwitches;
    }
  | { type: 'SpecificCorporationRemoved'; data: { corporationId: string; changedAt: string } };

export interface EnablementState {
  caseManagers: boolean;
  vendorCaseManagers: boolean;
  corporations: {
    mode: CorporationMode;
    /** The "all corporations" switches; in force in mode `all`. */
    all: CorporationSwitches;
    /** In force in mode `specific`. */
    specific: ReadonlyMap<string, CorporationSwitches>;
  };
}

export interface EnablementContext extends DecisionContext {
  subscriptionStatus: SubscriptionStatus;
}

export const enablementDecider: Decider<
  EnablementCommand,
  EnablementEvent,
  EnablementState,
  EnablementContext
> = {
  eventTypes: eventTypesOf<EnablementEvent['type']>({
    CaseManagersEnablementChanged: true,
    VendorCaseManagersEnablementChanged: true,
    CorporationModeChanged: true,
    SpecificCorporationSet: true,
    SpecificCorporationRemoved: true,
  }),

  initialState: () => ({
    caseManagers: false,
    vendorCaseManagers: false,
    corporations: {
      mode: 'all',
      all: { corpUsers: false, foreignNationals: false },
      specific: new Map(),
    },
  }),

  decide(command, state, { now, subscriptionStatus }) {
    if (subscriptionStatus !== 'active') {
      throw conflict(
        'subscription-not-active',
        'MFA can only be configured while the firm has an active MFA subscription.',
      );
    }
    switch (command.type) {
      case 'SetCaseManagersEnablement':
        if (state.caseManagers === command.enabled) return [];
        return [
          {
            type: 'CaseManagersEnablementChanged',
            data: { enabled: command.enabled, changedAt: now },
          },
        ];

      case 'SetVendorCaseManagersEnablement':
        if (state.vendorCaseManagers === command.enabled) return [];
        return [
          {
            type: 'VendorCaseManagersEnablementChanged',
            data: { enabled: command.enabled, changedAt: now },
          },
        ];

      case 'SetCorporationMode': {
        const current = state.corporations;
        const next = {
          mode: command.mode,
          corpUsers: command.corpUsers ?? current.all.corpUsers,
          foreignNationals: command.foreignNationals ?? current.all.foreignNationals,
        };
        if (
          next.mode === current.mode &&
          next.corpUsers === current.all.corpUsers &&
          next.foreignNationals === current.all.foreignNationals
        ) {
          return [];
        }
        return [{ type: 'CorporationModeChanged', data: { ...next, changedAt: now } }];
      }

      case 'SetSpecificCorporation': {
        if (state.corporations.mode !== 'specific') {
          throw conflict(
            'corporation-mode-not-specific',
            'Corporations are enabled in mode "all"; switch to mode "specific" before listing corporations.',
          );
        }
        const existing = state.corporations.specific.get(command.corporationId);
        if (
          existing?.corpUsers === command.corpUsers &&
          existing.foreignNationals === command.foreignNationals
        ) {
          return [];
        }
        return [
          {
            type: 'SpecificCorporationSet',
            data: {
              corporationId: command.corporationId,
              corpUsers: command.corpUsers,
              foreignNationals: command.foreignNationals,
              changedAt: now,
            },
          },
        ];
      }

      case 'RemoveSpecificCorporation':
        if (!state.corporations.specific.has(command.corporationId)) {
          throw notFound(
            'corporation-not-listed',
            `Corporation ${command.corporationId} is not in the list of specific corporations.`,
          );
        }
        return [
          {
            type: 'SpecificCorporationRemoved',
            data: { corporationId: command.corporationId, changedAt: now },
          },
        ];

      default:
        return assertNever(command);
    }
  },

  evolve(state, event) {
    switch (event.type) {
      case 'CaseManagersEnablementChanged':
        return { ...state, caseManagers: event.data.enabled };
      case 'VendorCaseManagersEnablementChanged':
        return { ...state, vendorCaseManagers: event.data.enabled };
      case 'CorporationModeChanged':
        return {
          ...state,
          corporations: {
            ...state.corporations,
            mode: event.data.mode,
            all: { corpUsers: event.data.corpUsers, foreignNationals: event.data.foreignNationals },
          },
        };
      case 'SpecificCorporationSet': {
        const specific = new Map(state.corporations.specific);
        specific.set(event.data.corporationId, {
          corpUsers: event.data.corpUsers,
          foreignNationals: event.data.foreignNationals,
        });
        return { ...state, corporations: { ...state.corporations, specific } };
      }
      case 'SpecificCorporationRemoved': {
        const specific = new Map(state.corporations.specific);
        specific.delete(event.data.corporationId);
        return { ...state, corporations: { ...state.corporations, specific } };
      }
      default:
        return assertNever(event);
    }
  },
};

/**
 * DESIGN §2.2, the one place the rule is written: a user is MFA-enabled when
 * the firm's subscription is active, the user is active, and a switch covers
 * the user's role (and, for corp users and foreign nationals, corporation).
 * Commands (eligibility, confirmation), the login decision, the notification
 * policy and the dashboards' projections all ask here.
 */
export function isMfaEnabled(
  facts: {
    subscriptionActive: boolean;
    userActive: boolean;
    role: UserRole;
    corporationId: string | null;
  },
  enablement: EnablementState,
): boolean {
  return facts.subscriptionActive && facts.userActive && switchCovers(enablement, facts);
}

/**
 * Whether a switch covers a user of this role (and corporation). MFA-enabled
 * additionally needs an active subscription and an active user (DESIGN §2).
 */
export function switchCovers(
  enablement: EnablementState,
  user: { role: UserRole; corporationId: string | null },
): boolean {
  switch (user.role) {
    case 'case-manager':
      return enablement.caseManagers;
    case 'vendor-case-manager':
      return enablement.vendorCaseManagers;
    case 'corp-user':
    case 'foreign-national': {
      const key = user.role === 'corp-user' ? 'corpUsers' : 'foreignNationals';
      const { mode, all, specific } = enablement.corporations;
      if (mode === 'all') return all[key];
      const entry = user.corporationId === null ? undefined : specific.get(user.corporationId);
      return entry?.[key] ?? false;
    }
    default:
      return assertNever(user.role);
  }
}
