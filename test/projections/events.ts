import type { CorporationEvent } from '../../src/directory/corporation.decider';
import type { UserEvent, UserProfile } from '../../src/directory/user.decider';
import type { EnablementEvent } from '../../src/enablement/enablement.decider';
import type { SubscriptionEvent } from '../../src/subscription/subscription.decider';
import { recorded } from './projection-spec';

/*
 * The slices' events, in the words of DESIGN.md, for the projection specs:
 * each as its decider appends it, recorded in firm `acme` unless told.
 */
export const T = '2026-01-15T09:00:00.000Z';

const user = (e: UserEvent, firmId?: string) => recorded(e, firmId);

export const caseManager: UserProfile = {
  role: 'case-manager',
  corporationId: null,
  name: 'Ann Smith',
  email: 'ann@example.com',
  organization: 'Acme Law',
  billingContact: false,
  firmAdmin: false,
};

export const corpUser = (corporationId: string): UserProfile => ({
  ...caseManager,
  role: 'corp-user',
  corporationId,
  name: 'Bob Okafor',
  email: 'bob@example.com',
  organization: null,
});

export const registered = (userId: string, profile: UserProfile = caseManager, firmId?: string) =>
  user({ type: 'UserRegistered', data: { userId, registeredAt: T, ...profile } }, firmId);

export const profileUpdated = (userId: string, profile: UserProfile) =>
  user({ type: 'UserProfileUpdated', data: { userId, updatedAt: T, ...profile } });

export const deactivated = (userId: string) =>
  user({
    type: 'UserDeactivated',
    data: { userId, reason: 'account-disabled', deactivatedAt: T },
  });

export const reactivated = (userId: string) =>
  user({ type: 'UserReactivated', data: { userId, reactivatedAt: T } });

export const factorConfirmed = (
  userId: string,
  factorId: string,
  factorType: 'totp' | 'webauthn' = 'totp',
  confirmedAt = T,
) =>
  user({
    type: 'FactorConfirmed',
    data: {
      userId,
      factorId,
      enrollmentId: `enr-${factorId}`,
      factorType,
      label: factorType,
      generation: 0,
      confirmedAt,
    },
  });

export const enrollmentReset = (userId: string, factorIds: string[]) =>
  user({
    type: 'EnrollmentReset',
    data: {
      userId,
      reason: 'lost phone',
      trigger: 'superuser',
      factorIds,
      generation: 1,
      resetAt: T,
    },
  });

const subscription = (e: SubscriptionEvent) => recorded(e);

export const requested = subscription({
  type: 'SubscriptionRequested',
  data: { plan: 'standard', requestedAt: T },
});

export const activated = subscription({
  type: 'SubscriptionActivated',
  data: { plan: 'standard', licenseCount: 10, activatedAt: T },
});

export const cancelled = subscription({ type: 'SubscriptionCancelled', data: { cancelledAt: T } });

const enablement = (e: EnablementEvent) => recorded(e);

export const caseManagersEnabled = (enabled: boolean) =>
  enablement({ type: 'CaseManagersEnablementChanged', data: { enabled, changedAt: T } });

export const vendorsEnabled = (enabled: boolean) =>
  enablement({ type: 'VendorCaseManagersEnablementChanged', data: { enabled, changedAt: T } });

export const corporationMode = (
  mode: 'all' | 'specific',
  corpUsers: boolean,
  foreignNationals: boolean,
) =>
  enablement({
    type: 'CorporationModeChanged',
    data: { mode, corpUsers, foreignNationals, changedAt: T },
  });

export const specificCorporationSet = (
  corporationId: string,
  corpUsers: boolean,
  foreignNationals: boolean,
) =>
  enablement({
    type: 'SpecificCorporationSet',
    data: { corporationId, corpUsers, foreignNationals, changedAt: T },
  });

export const specificCorporationRemoved = (corporationId: string) =>
  enablement({ type: 'SpecificCorporationRemoved', data: { corporationId, changedAt: T } });

const corporation = (e: CorporationEvent) => recorded(e);

export const corporationRegistered = (corporationId: string, name: string) =>
  corporation({ type: 'CorporationRegistered', data: { corporationId, name, registeredAt: T } });

export const corporationRenamed = (corporationId: string, name: string, previousName: string) =>
  corporation({
    type: 'CorporationRenamed',
    data: { corporationId, name, previousName, renamedAt: T },
  });

/** The firm's scope document (projections/mfa-scope.ts) as it starts. */
export const emptyScopeOf = (firmId = 'acme') => ({
  firmId,
  subscription: 'none',
  caseManagers: false,
  vendorCaseManagers: false,
  mode: 'all',
  allCorpUsers: false,
  allForeignNationals: false,
  specific: [] as Array<{ corporationId: string; corpUsers: boolean; foreignNationals: boolean }>,
});
