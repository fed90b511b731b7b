import {
  DEACTIVATION_REASONS,
  DeactivationReason,
  UserCommand,
  userDecider,
  UserEvent,
  UserProfile,
} from '../../src/directory/user.decider';
import { deciderSpec } from '../support/decider-spec';

const now = '2026-01-15T09:00:00.000Z';
const spec = deciderSpec(userDecider, { now });
const userId = 'user-42';

const caseManager: UserProfile = {
  role: 'case-manager',
  corporationId: null,
  name: 'Ada Lovelace',
  email: 'ada@firm.example',
  organization: 'Lovelace Immigration LLP',
  billingContact: true,
  firmAdmin: false,
};
const corpUser: UserProfile = {
  role: 'corp-user',
  corporationId: 'acme',
  name: 'Wile E. Coyote',
  email: 'wile@acme.example',
  organization: 'Acme Corp',
  billingContact: false,
  firmAdmin: false,
};
const foreignNational: UserProfile = {
  ...corpUser,
  role: 'foreign-national',
  name: 'Road Runner',
  email: 'beep@acme.example',
};
const vendorCaseManager: UserProfile = {
  ...caseManager,
  role: 'vendor-case-manager',
  name: 'Vera Vendor',
  email: 'vera@vendor.example',
  organization: null,
  billingContact: false,
};

// Commands.
const registerOrUpdate = (profile: UserProfile): UserCommand => ({
  type: 'RegisterOrUpdateUser',
  userId,
  profile,
});
const deactivate = (reason: DeactivationReason): UserCommand => ({
  type: 'DeactivateUser',
  userId,
  reason,
});
const reactivate: UserCommand = { type: 'ReactivateUser', userId };

// Facts.
const registered = (profile: UserProfile): UserEvent => ({
  type: 'UserRegistered',
  data: { userId, ...profile, registeredAt: now },
});
const profileUpdated = (profile: UserProfile): UserEvent => ({
  type: 'UserProfileUpdated',
  data: { userId, ...profile, updatedAt: now },
});
const deactivated = (reason: DeactivationReason): UserEvent => ({
  type: 'UserDeactivated',
  data: { userId, reason, deactivatedAt: now },
});
const reactivated: UserEvent = { type: 'UserReactivated', data: { userId, reactivatedAt: now } };

describe('User (the directory as the host syncs it)', () => {
  describe('the host registers a user', () => {
    it.each([caseManager, vendorCaseManager, corpUser, foreignNational])(
      'a $role is registered with the whole profile',
      (profile) => {
        spec
          .given([])
          .when(registerOrUpdate(profile))
          .then([registered(profile)]);
      },
    );
  });

  describe('the host updates a user', () => {
    it('sending the identical profile again changes nothing', () => {
      spec
        .given([registered(caseManager)])
        .when(registerOrUpdate(caseManager))
        .then([]);
      spec
        .given([registered(caseManager), profileUpdated(corpUser)])
        .when(registerOrUpdate(corpUser))
        .then([]);
    });

    it.each<[string, Partial<UserProfile>]>([
      ['the name', { name: 'Ada King' }],
      ['the email', { email: 'ada.king@firm.example' }],
      ['the organization', { organization: null }],
      ['the billing-contact flag', { billingContact: false }],
      ['the firm-admin flag', { firmAdmin: true }],
      ['the role', { role: 'vendor-case-manager' }],
      ['the role and corporation', { role: 'corp-user', corporationId: 'acme' }],
    ])('a change of %s is recorded with the whole new profile', (_, change) => {
      const changed = { ...caseManager, ...change };
      spec
        .given([registered(caseManager)])
        .when(registerOrUpdate(changed))
        .then([profileUpdated(changed)]);
    });

    it('a move to another corporation is recorded', () => {
      const moved = { ...corpUser, corporationId: 'globex' };
      spec
        .given([registered(corpUser)])
        .when(registerOrUpdate(moved))
        .then([profileUpdated(moved)]);
    });

    it('an update of an inactive user keeps the user inactive', () => {
      const renamed = { ...caseManager, name: 'Ada King' };
      const history = [registered(caseManager), deactivated('account-disabled')];
      spec
        .given(history)
        .when(registerOrUpdate(renamed))
        .then([profileUpdated(renamed)]);

      const updatedWhileInactive = [...history, profileUpdated(renamed)];
      spec.given(updatedWhileInactive).when(deactivate('account-disabled')).then([]);
      spec.given(updatedWhileInactive).when(reactivate).then([reactivated]);
    });
  });

  describe('corp users and foreign nationals always belong to a corporation; nobody else does', () => {
    it.each([corpUser, foreignNational])('a $role without a corporation is refused', (profile) => {
      const error = spec
        .given([])
        .when(registerOrUpdate({ ...profile, corporationId: null }))
        .thenThrows('corporation-required', 'invalid');
      expect(error.extensions).toEqual({
        errors: [{ field: 'corporationId', message: `required for role ${profile.role}` }],
      });
    });

    it.each([caseManager, vendorCaseManager])(
      'a $role with a corporation is refused',
      (profile) => {
        const error = spec
          .given([])
          .when(registerOrUpdate({ ...profile, corporationId: 'acme' }))
          .thenThrows('corporation-not-allowed', 'invalid');
        expect(error.extensions).toEqual({
          errors: [{ field: 'corporationId', message: `not allowed for role ${profile.role}` }],
        });
      },
    );

    it('an update is held to the same rule', () => {
      spec
        .given([registered(caseManager)])
        .when(registerOrUpdate({ ...caseManager, role: 'foreign-national' }))
        .thenThrows('corporation-required', 'invalid');
      spec
        .given([registered(corpUser)])
        .when(registerOrUpdate({ ...corpUser, role: 'case-manager' }))
        .thenThrows('corporation-not-allowed', 'invalid');
    });
  });

  describe('the host deactivates a user with a reason', () => {
    it.each(DEACTIVATION_REASONS)('an active user is deactivated: %s', (reason) => {
      spec
        .given([registered(corpUser)])
        .when(deactivate(reason))
        .then([deactivated(reason)]);
    });

    it('deactivating an inactive user again with the same reason changes nothing', () => {
      spec
        .given([registered(corpUser), deactivated('portal-access-disabled')])
        .when(deactivate('portal-access-disabled'))
        .then([]);
    });

    it('deactivating an inactive user with a different reason records the new reason', () => {
      spec
        .given([registered(corpUser), deactivated('portal-access-disabled')])
        .when(deactivate('deleted'))
        .then([deactivated('deleted')]);
    });

    it('a user reactivated since is deactivated again, even with the earlier reason', () => {
      spec
        .given([registered(corpUser), deactivated('record-inactivated'), reactivated])
        .when(deactivate('record-inactivated'))
        .then([deactivated('record-inactivated')]);
    });

    it('a user the host never registered cannot be deactivated', () => {
      spec.given([]).when(deactivate('deleted')).thenThrows('user-not-found', 'not-found');
    });
  });

  describe('the host reactivates a user', () => {
    it('an inactive user is reactivated', () => {
      spec
        .given([registered(caseManager), deactivated('account-disabled')])
        .when(reactivate)
        .then([reactivated]);
    });

    it('reactivating an active user changes nothing', () => {
      spec
        .given([registered(caseManager)])
        .when(reactivate)
        .then([]);
      spec
        .given([registered(caseManager), deactivated('account-disabled'), reactivated])
        .when(reactivate)
        .then([]);
    });

    it('a user the host never registered cannot be reactivated', () => {
      spec.given([]).when(reactivate).thenThrows('user-not-found', 'not-found');
    });
  });

  it('facts about a user who was never registered do not make the user exist', () => {
    const orphanFacts = [profileUpdated(caseManager), deactivated('deleted'), reactivated];
    spec.given(orphanFacts).when(reactivate).thenThrows('user-not-found', 'not-found');
    spec
      .given(orphanFacts)
      .when(registerOrUpdate(caseManager))
      .then([registered(caseManager)]);
  });
});
