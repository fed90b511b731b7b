import type { RecordedEvent } from '../src/event-store/event-store.port';
import type { UserRole } from '../src/directory/user.decider';
import { EnablementState, isMfaEnabled } from '../src/enablement/enablement.decider';
import type { SubscriptionStatus } from '../src/subscription/subscription.decider';
import { DocumentChange, DocumentSnapshot, put } from '../src/projection-engine/projection';

/*
 * Who is MFA-enabled (DESIGN §2): the subscription is active, the user is
 * active, and a switch covers the user's role (and corporation). This file
 * keeps, per firm, the two firm-wide facts of that rule (subscription status
 * and the switches) as one small document, and answers the rule with the
 * enablement slice's own `isMfaEnabled`, so dashboards and commands cannot
 * disagree.
 */

export interface ScopeDoc {
  firmId: string;
  subscription: SubscriptionStatus;
  caseManagers: boolean;
  vendorCaseManagers: boolean;
  mode: 'all' | 'specific';
  allCorpUsers: boolean;
  allForeignNationals: boolean;
  /** An array, not a map: corporation ids may contain `.`, which MongoDB keys may not. */
  specific: Array<{ corporationId: string; corpUsers: boolean; foreignNationals: boolean }>;
}

export const SCOPE_EVENTS = [
  'SubscriptionRequested',
  'SubscriptionActivated',
  'SubscriptionCancelled',
  'CaseManagersEnablementChanged',
  'VendorCaseManagersEnablementChanged',
  'CorporationModeChanged',
  'SpecificCorporationSet',
  'SpecificCorporationRemoved',
] as const;

export const emptyScope = (firmId: string): ScopeDoc => ({
  firmId,
  subscription: 'none',
  caseManagers: false,
  vendorCaseManagers: false,
  mode: 'all',
  allCorpUsers: false,
  allForeignNationals: false,
  specific: [],
});

/**
 * The events of a user's stream that tell who the user is, whether active,
 * and whether enrolled: what the per-user read models follow.
 */
export const USER_EVENTS = [
  'UserRegistered',
  'UserProfileUpdated',
  'UserDeactivated',
  'UserReactivated',
  'FactorConfirmed',
  'EnrollmentReset',
] as const;

const USER_EVENT_SET: ReadonlySet<string> = new Set(USER_EVENTS);

export const isUserEvent = (type: string) => USER_EVENT_SET.has(type);

const SCOPE_EVENT_SET: ReadonlySet<string> = new Set(SCOPE_EVENTS);

export const isScopeEvent = (type: string) => SCOPE_EVENT_SET.has(type);

/**
 * The change one of SCOPE_EVENTS makes to the firm's scope document
 * (collection `scopes`, id the firm id): written at every such event, from
 * the empty scope when there is none yet.
 */
export function scopeChanges(event: RecordedEvent, documents: DocumentSnapshot): DocumentChange[] {
  const firmId = event.metadata.firmId;
  const scope = documents.get<ScopeDoc>('scopes', firmId) ?? emptyScope(firmId);
  return [put('scopes', firmId, evolveScope(scope, event))];
}

/** The scope after one of SCOPE_EVENTS. */
export function evolveScope(scope: ScopeDoc, event: RecordedEvent): ScopeDoc {
  const data = event.data as Record<string, never>;
  switch (event.type) {
    case 'SubscriptionRequested':
      return { ...scope, subscription: 'requested' };
    case 'SubscriptionActivated':
      return { ...scope, subscription: 'active' };
    case 'SubscriptionCancelled':
      return { ...scope, subscription: 'cancelled' };
    case 'CaseManagersEnablementChanged':
      return { ...scope, caseManagers: data.enabled === true };
    case 'VendorCaseManagersEnablementChanged':
      return { ...scope, vendorCaseManagers: data.enabled === true };
    case 'CorporationModeChanged':
      return {
        ...scope,
        mode: data.mode === 'specific' ? 'specific' : 'all',
        allCorpUsers: data.corpUsers === true,
        allForeignNationals: data.foreignNationals === true,
      };
    case 'SpecificCorporationSet': {
      const entry = {
        corporationId: String(data.corporationId),
        corpUsers: data.corpUsers === true,
        foreignNationals: data.foreignNationals === true,
      };
      const others = scope.specific.filter((s) => s.corporationId !== entry.corporationId);
      return { ...scope, specific: [...others, entry] };
    }
    case 'SpecificCorporationRemoved':
      return {
        ...scope,
        specific: scope.specific.filter((s) => s.corporationId !== String(data.corporationId)),
      };
    default:
      return scope;
  }
}

/** The scope in the enablement decider's shape, to ask its `switchCovers`. */
export function enablementOf(scope: ScopeDoc): EnablementState {
  return {
    caseManagers: scope.caseManagers,
    vendorCaseManagers: scope.vendorCaseManagers,
    corporations: {
      mode: scope.mode,
      all: { corpUsers: scope.allCorpUsers, foreignNationals: scope.allForeignNationals },
      specific: new Map(
        scope.specific.map((s) => [
          s.corporationId,
          { corpUsers: s.corpUsers, foreignNationals: s.foreignNationals },
        ]),
      ),
    },
  };
}

/** Whether MFA applies to a user; `enablement` is `enablementOf(scope)`, computed once per query. */
export function mfaEnabled(
  scope: ScopeDoc,
  enablement: EnablementState,
  user: { role: UserRole; corporationId: string | null; active: boolean },
): boolean {
  return isMfaEnabled(
    {
      subscriptionActive: scope.subscription === 'active',
      userActive: user.active,
      role: user.role,
      corporationId: user.corporationId,
    },
    enablement,
  );
}

/** A confirmed factor as the per-user read models keep it. */
export interface ConfirmedFactor {
  factorId: string;
  type: 'totp' | 'webauthn';
  confirmedAt: string;
}

/**
 * What the per-user read models know of a user from USER_EVENTS: role and
 * corporation (from the latest profile), whether active, and the factors
 * confirmed since the last EnrollmentReset, in confirmation order.
 */
export interface UserFacts {
  firmId: string;
  userId: string;
  role: UserRole;
  corporationId: string | null;
  active: boolean;
  factors: ConfirmedFactor[];
}

/**
 * A user's facts after one of USER_EVENTS; `user` itself when the event
 * changes nothing, and null for events about a user never registered. A
 * registration or profile update takes the profile's fields from the event,
 * plus the projection's own (`profileOf`, such as name and email); activity
 * and factors carry over. A deactivation keeps the factors: the
 * EnrollmentReset appended with it clears them (DESIGN §3).
 */
export function evolveUserFacts<T extends UserFacts>(
  user: T | null,
  event: RecordedEvent,
  profileOf: (event: RecordedEvent) => Omit<T, keyof UserFacts>,
): T | null {
  switch (event.type) {
    case 'UserRegistered':
    case 'UserProfileUpdated': {
      const corporationId = event.data.corporationId;
      return {
        ...profileOf(event),
        firmId: event.metadata.firmId,
        userId: text(event, 'userId'),
        role: role(event),
        corporationId: typeof corporationId === 'string' ? corporationId : null,
        active: user?.active ?? true,
        factors: user?.factors ?? [],
      } as T;
    }
    case 'UserDeactivated':
      return user && { ...user, active: false };
    case 'UserReactivated':
      return user && { ...user, active: true };
    case 'FactorConfirmed': {
      const factorId = text(event, 'factorId');
      const type = text(event, 'factorType');
      if (type !== 'totp' && type !== 'webauthn') {
        throw new Error(`FactorConfirmed.factorType ${type} is not totp or webauthn`);
      }
      if (!user || user.factors.some((f) => f.factorId === factorId)) return user;
      const factor: ConfirmedFactor = { factorId, type, confirmedAt: text(event, 'confirmedAt') };
      return { ...user, factors: [...user.factors, factor] };
    }
    case 'EnrollmentReset':
      return user && user.factors.length > 0 ? { ...user, factors: [] } : user;
    default:
      return user;
  }
}

export const ROLE_KEYS = {
  'case-manager': 'caseManagers',
  'vendor-case-manager': 'vendorCaseManagers',
  'corp-user': 'corpUsers',
  'foreign-national': 'foreignNationals',
} as const satisfies Record<UserRole, string>;

export type RoleCounts = Record<(typeof ROLE_KEYS)[UserRole], number>;

export const zeroCounts = (): RoleCounts => ({
  caseManagers: 0,
  vendorCaseManagers: 0,
  corpUsers: 0,
  foreignNationals: 0,
});

/** A field of an event's data that must be a string; a malformed event stops the projection. */
export function text(event: RecordedEvent, field: string): string {
  const value = event.data[field];
  if (typeof value !== 'string') throw new Error(`${event.type}.${field} is not a string`);
  return value;
}

export function isRole(value: unknown): value is UserRole {
  return typeof value === 'string' && value in ROLE_KEYS;
}

export function role(event: RecordedEvent): UserRole {
  const value = event.data.role;
  if (!isRole(value)) throw new Error(`${event.type}.role is not a known role`);
  return value;
}
