import { fold } from '../../src/shared/decider';
import type { UserRole } from '../../src/directory/user.decider';
import {
  CorporationMode,
  EnablementCommand,
  enablementDecider,
  EnablementEvent,
  switchCovers,
} from '../../src/enablement/enablement.decider';
import type { SubscriptionStatus } from '../../src/subscription/subscription.decider';
import { deciderSpec } from '../support/decider-spec';

const now = '2026-01-15T09:00:00.000Z';
const spec = deciderSpec(enablementDecider, { now, subscriptionStatus: 'active' });

// Commands.
const setCaseManagers = (enabled: boolean): EnablementCommand => ({
  type: 'SetCaseManagersEnablement',
  enabled,
});
const setVendorCaseManagers = (enabled: boolean): EnablementCommand => ({
  type: 'SetVendorCaseManagersEnablement',
  enabled,
});
const setCorporationMode = (
  mode: CorporationMode,
  switches: { corpUsers?: boolean; foreignNationals?: boolean } = {},
): EnablementCommand => ({ type: 'SetCorporationMode', mode, ...switches });
const setSpecificCorporation = (
  corporationId: string,
  corpUsers: boolean,
  foreignNationals: boolean,
): EnablementCommand => ({
  type: 'SetSpecificCorporation',
  corporationId,
  corpUsers,
  foreignNationals,
});
const removeSpecificCorporation = (corporationId: string): EnablementCommand => ({
  type: 'RemoveSpecificCorporation',
  corporationId,
});

// Facts.
const caseManagersChanged = (enabled: boolean): EnablementEvent => ({
  type: 'CaseManagersEnablementChanged',
  data: { enabled, changedAt: now },
});
const vendorCaseManagersChanged = (enabled: boolean): EnablementEvent => ({
  type: 'VendorCaseManagersEnablementChanged',
  data: { enabled, changedAt: now },
});
const corporationModeChanged = (
  mode: CorporationMode,
  corpUsers: boolean,
  foreignNationals: boolean,
): EnablementEvent => ({
  type: 'CorporationModeChanged',
  data: { mode, corpUsers, foreignNationals, changedAt: now },
});
const specificCorporationSet = (
  corporationId: string,
  corpUsers: boolean,
  foreignNationals: boolean,
): EnablementEvent => ({
  type: 'SpecificCorporationSet',
  data: { corporationId, corpUsers, foreignNationals, changedAt: now },
});
const specificCorporationRemoved = (corporationId: string): EnablementEvent => ({
  type: 'SpecificCorporationRemoved',
  data: { corporationId, changedAt: now },
});

const specificMode = corporationModeChanged('specific', false, false);

/** Whether a switch of the enablement built from these events covers the user. */
const covers = (
  history: EnablementEvent[],
  role: UserRole,
  corporationId: string | null = null,
): boolean => switchCovers(fold(enablementDecider, history), { role, corporationId });

describe('Enablement', () => {
  describe('MFA can only be configured while the subscription is active', () => {
    const everyCommand: Array<[string, EnablementCommand]> = [
      ['switching case managers', setCaseManagers(true)],
      ['switching vendor case managers', setVendorCaseManagers(true)],
      ['choosing the corporation mode', setCorporationMode('all', { corpUsers: true })],
      ['listing a specific corporation', setSpecificCorporation('acme', true, true)],
      ['removing a specific corporation', removeSpecificCorporation('acme')],
    ];
    const inactiveStatuses: SubscriptionStatus[] = ['none', 'requested', 'cancelled'];

    describe.each(everyCommand)('%s', (_, command) => {
      it.each(inactiveStatuses)('is refused when the subscription is %s', (subscriptionStatus) => {
        spec
          .given([specificMode, specificCorporationSet('acme', false, false)])
          .when(command, { subscriptionStatus })
          .thenThrows('subscription-not-active', 'conflict');
      });
    });
  });

  describe.each([
    {
      who: 'all case managers',
      set: setCaseManagers,
      changed: caseManagersChanged,
      role: 'case-manager' as const,
    },
    {
      who: 'all vendor case managers',
      set: setVendorCaseManagers,
      changed: vendorCaseManagersChanged,
      role: 'vendor-case-manager' as const,
    },
  ])('the switch for $who', ({ set, changed, role }) => {
    it('is off at first', () => {
      expect(covers([], role)).toBe(false);
    });

    it('switching it on is recorded', () => {
      spec
        .given([])
        .when(set(true))
        .then([changed(true)]);
    });

    it('switching it off again is recorded', () => {
      spec
        .given([changed(true)])
        .when(set(false))
        .then([changed(false)]);
    });

    it('setting it to its current value changes nothing', () => {
      spec.given([]).when(set(false)).then([]);
      spec
        .given([changed(true)])
        .when(set(true))
        .then([]);
    });

    it(`covers a ${role} exactly while it is on`, () => {
      expect(covers([changed(true)], role)).toBe(true);
      expect(covers([changed(true), changed(false)], role)).toBe(false);
    });
  });

  it('the case-manager and vendor-case-manager switches are independent', () => {
    expect(covers([caseManagersChanged(true)], 'vendor-case-manager')).toBe(false);
    expect(covers([vendorCaseManagersChanged(true)], 'case-manager')).toBe(false);
  });

  describe('corporations in mode "all corporations"', () => {
    it('is the mode at first, with both switches off', () => {
      spec.given([]).when(setCorporationMode('all')).then([]);
      expect(covers([], 'corp-user', 'acme')).toBe(false);
      expect(covers([], 'foreign-national', 'acme')).toBe(false);
    });

    it('switching on all corp users and all foreign nationals is recorded', () => {
      spec
        .given([])
        .when(setCorporationMode('all', { corpUsers: true, foreignNationals: true }))
        .then([corporationModeChanged('all', true, true)]);
    });

    it('a switch left out keeps its current value', () => {
      spec
        .given([corporationModeChanged('all', true, false)])
        .when(setCorporationMode('all', { foreignNationals: true }))
        .then([corporationModeChanged('all', true, true)]);
      spec
        .given([corporationModeChanged('all', true, true)])
        .when(setCorporationMode('all', { corpUsers: false }))
        .then([corporationModeChanged('all', false, true)]);
    });

    it('setting the mode and switches to their current values changes nothing', () => {
      spec
        .given([corporationModeChanged('all', true, false)])
        .when(setCorporationMode('all', { corpUsers: true }))
        .then([]);
      spec
        .given([corporationModeChanged('all', true, false)])
        .when(setCorporationMode('all', { corpUsers: true, foreignNationals: false }))
        .then([]);
    });

    it('specific corporations cannot be listed in this mode', () => {
      spec
        .given([])
        .when(setSpecificCorporation('acme', true, true))
        .thenThrows('corporation-mode-not-specific', 'conflict');
    });

    describe.each([
      { switches: 'both switches off', corpUsers: false, foreignNationals: false },
      { switches: 'only corp users on', corpUsers: true, foreignNationals: false },
      { switches: 'only foreign nationals on', corpUsers: false, foreignNationals: true },
      { switches: 'both switches on', corpUsers: true, foreignNationals: true },
    ])(
      'with $switches, every corporation is covered according to the two switches',
      ({ corpUsers, foreignNationals }) => {
        const history = [corporationModeChanged('all', corpUsers, foreignNationals)];

        it.each(['acme', 'globex'])('corp users and foreign nationals of %s', (corporationId) => {
          expect(covers(history, 'corp-user', corporationId)).toBe(corpUsers);
          expect(covers(history, 'foreign-national', corporationId)).toBe(foreignNationals);
        });

        it('case managers and vendor case managers are not concerned', () => {
          expect(covers(history, 'case-manager')).toBe(false);
          expect(covers(history, 'vendor-case-manager')).toBe(false);
        });
      },
    );

    it('a listed corporation is out of force in this mode', () => {
      const history = [
        specificMode,
        specificCorporationSet('acme', true, true),
        corporationModeChanged('all', false, false),
      ];
      expect(covers(history, 'corp-user', 'acme')).toBe(false);
      expect(covers(history, 'foreign-national', 'acme')).toBe(false);
    });
  });

  describe('corporations in mode "specific corporations"', () => {
    it('switching to specific corporations keeps the all-corporations switches stored', () => {
      spec
        .given([corporationModeChanged('all', true, true)])
        .when(setCorporationMode('specific'))
        .then([corporationModeChanged('specific', true, true)]);
    });

    it('the stored all-corporations switches are out of force: an unlisted corporation is not covered', () => {
      const history = [
        corporationModeChanged('all', true, true),
        corporationModeChanged('specific', true, true),
      ];
      expect(covers(history, 'corp-user', 'acme')).toBe(false);
      expect(covers(history, 'foreign-national', 'acme')).toBe(false);
    });

    it('switching back to mode all brings the stored switches back in force, without retyping them', () => {
      const history = [
        corporationModeChanged('all', true, true),
        corporationModeChanged('specific', true, true),
      ];
      spec
        .given(history)
        .when(setCorporationMode('all'))
        .then([corporationModeChanged('all', true, true)]);
      const backToAll = [...history, corporationModeChanged('all', true, true)];
      expect(covers(backToAll, 'corp-user', 'acme')).toBe(true);
    });

    it('switching back to mode specific brings the list back in force, without retyping it', () => {
      const history = [
        specificMode,
        specificCorporationSet('acme', true, false),
        corporationModeChanged('all', false, false),
        specificMode,
      ];
      expect(covers(history, 'corp-user', 'acme')).toBe(true);
    });

    it('listing a corporation records which of its users are enabled', () => {
      spec
        .given([specificMode])
        .when(setSpecificCorporation('acme', true, false))
        .then([specificCorporationSet('acme', true, false)]);
    });

    it('a corporation can be listed with both switches off (listed, covering nobody)', () => {
      spec
        .given([specificMode])
        .when(setSpecificCorporation('acme', false, false))
        .then([specificCorporationSet('acme', false, false)]);
    });

    it("updating a listed corporation's switches is recorded", () => {
      spec
        .given([specificMode, specificCorporationSet('acme', true, false)])
        .when(setSpecificCorporation('acme', true, true))
        .then([specificCorporationSet('acme', true, true)]);
      spec
        .given([specificMode, specificCorporationSet('acme', true, false)])
        .when(setSpecificCorporation('acme', false, false))
        .then([specificCorporationSet('acme', false, false)]);
    });

    it('setting a listed corporation to its current switches changes nothing', () => {
      spec
        .given([specificMode, specificCorporationSet('acme', true, false)])
        .when(setSpecificCorporation('acme', true, false))
        .then([]);
    });

    it('a listed corporation is removed from the list', () => {
      spec
        .given([specificMode, specificCorporationSet('acme', true, true)])
        .when(removeSpecificCorporation('acme'))
        .then([specificCorporationRemoved('acme')]);
    });

    it('a listed corporation can be removed while mode all is in force (the list is kept across modes)', () => {
      spec
        .given([
          specificMode,
          specificCorporationSet('acme', true, true),
          corporationModeChanged('all', false, false),
        ])
        .when(removeSpecificCorporation('acme'))
        .then([specificCorporationRemoved('acme')]);
    });

    it('removing a corporation that is not listed is refused', () => {
      spec
        .given([specificMode, specificCorporationSet('acme', true, true)])
        .when(removeSpecificCorporation('globex'))
        .thenThrows('corporation-not-listed', 'not-found');
      spec
        .given([
          specificMode,
          specificCorporationSet('acme', true, true),
          specificCorporationRemoved('acme'),
        ])
        .when(removeSpecificCorporation('acme'))
        .thenThrows('corporation-not-listed', 'not-found');
    });

    describe('who is covered', () => {
      const history = [
        corporationModeChanged('all', true, true),
        corporationModeChanged('specific', true, true),
        specificCorporationSet('acme', true, false),
        specificCorporationSet('initech', false, true),
        specificCorporationSet('globex', true, true),
        specificCorporationRemoved('globex'),
      ];

      it('a corp user of a listed corporation with corp users on is covered', () => {
        expect(covers(history, 'corp-user', 'acme')).toBe(true);
      });

      it('foreign nationals of the same corporation are not covered while its foreign-nationals switch is off', () => {
        expect(covers(history, 'foreign-national', 'acme')).toBe(false);
      });

      it('foreign nationals of a listed corporation with foreign nationals on are covered, its corp users not', () => {
        expect(covers(history, 'foreign-national', 'initech')).toBe(true);
        expect(covers(history, 'corp-user', 'initech')).toBe(false);
      });

      it('users of an unlisted corporation are not covered', () => {
        expect(covers(history, 'corp-user', 'umbrella')).toBe(false);
        expect(covers(history, 'foreign-national', 'umbrella')).toBe(false);
      });

      it('users of a corporation removed from the list are no longer covered', () => {
        expect(covers(history, 'corp-user', 'globex')).toBe(false);
        expect(covers(history, 'foreign-national', 'globex')).toBe(false);
      });

      it('a corporation user with no corporation on record matches no entry of the list', () => {
        expect(covers(history, 'corp-user', null)).toBe(false);
      });

      it('case managers and vendor case managers are not concerned by the list', () => {
        expect(covers(history, 'case-manager')).toBe(false);
        expect(covers(history, 'vendor-case-manager')).toBe(false);
      });
    });
  });
});
