import { roleCountersProjection } from '../../projections/role-counters.projection';
import {
  corpUser,
  deactivated,
  enrollmentReset,
  factorConfirmed,
  profileUpdated,
  reactivated,
  registered,
  T,
} from './events';
import { event, projectionSpec } from './projection-spec';
import { itKeepsTheFirmsScope } from './scope-specs';

/*
 * Per-role counters: how many users of each (role, corporation) group are
 * active and how many enrolled. "Enabled" is derived from the groups and the
 * firm's scope when the counters are read, so these documents never depend on
 * a switch.
 */
const spec = projectionSpec(roleCountersProjection);

const staff = (active: number, enrolled: number) => ({
  'acme/case-manager/': {
    firmId: 'acme',
    role: 'case-manager',
    corporationId: null,
    active,
    enrolled,
  },
});
const corporate = (corporationId: string, active: number, enrolled: number) => ({
  [`acme/corp-user/${corporationId}`]: {
    firmId: 'acme',
    role: 'corp-user',
    corporationId,
    active,
    enrolled,
  },
});
const confirmed = (factorId: string) => ({ factorId, type: 'totp', confirmedAt: T });
const user = (changes: object = {}) => ({
  'acme/u-1': {
    firmId: 'acme',
    role: 'case-manager',
    corporationId: null,
    userId: 'u-1',
    active: true,
    factors: [] as object[],
    ...changes,
  },
});

describe('Role counters projection', () => {
  it('counts a registered user as active in its group, and as enrolled from its first factor', () => {
    spec
      .given([])
      .when(registered('u-1'))
      .then({ users: user(), groups: staff(1, 0) });
    spec
      .given([registered('u-1')])
      .when(factorConfirmed('u-1', 'f-1'), factorConfirmed('u-1', 'f-2'))
      .then({
        users: user({ factors: [confirmed('f-1'), confirmed('f-2')] }),
        groups: staff(1, 1),
      });
    spec
      .given([registered('u-1'), factorConfirmed('u-1', 'f-1')])
      .when(factorConfirmed('u-1', 'f-1'))
      .thenNothingChanges();
  });

  it('moves a user between groups when its corporation or role changes', () => {
    spec
      .given([registered('u-1', corpUser('c-1')), factorConfirmed('u-1', 'f-1')])
      .when(profileUpdated('u-1', corpUser('c-2')))
      .then({ groups: { ...corporate('c-1', 0, 0), ...corporate('c-2', 1, 1) } });
  });

  it('counts a deactivated user out of the active ones, still enrolled until its reset; a reactivation counts it back', () => {
    const enrolled = [registered('u-1'), factorConfirmed('u-1', 'f-1')];
    spec
      .given(enrolled)
      .when(deactivated('u-1'))
      .then({ users: user({ active: false, factors: [confirmed('f-1')] }), groups: staff(0, 1) });
    spec
      .given([...enrolled, deactivated('u-1')])
      .when(enrollmentReset('u-1', ['f-1']))
      .then({ users: user({ active: false }), groups: staff(0, 0) });
    spec
      .given([...enrolled, deactivated('u-1'), enrollmentReset('u-1', ['f-1'])])
      .when(reactivated('u-1'))
      .then({ users: user(), groups: staff(1, 0) });
  });

  it('counts a reset user out of the enrolled ones, once', () => {
    spec
      .given([registered('u-1'), factorConfirmed('u-1', 'f-1')])
      .when(enrollmentReset('u-1', ['f-1']))
      .then({ users: user(), groups: staff(1, 0) });
    spec
      .given([registered('u-1')])
      .when(enrollmentReset('u-1', []))
      .thenNothingChanges();
  });

  it('changes nothing for events about a user never registered', () => {
    spec
      .given([])
      .when(factorConfirmed('u-9', 'f-9'), deactivated('u-9'), enrollmentReset('u-9', []))
      .thenNothingChanges();
  });

  itKeepsTheFirmsScope(roleCountersProjection);

  it('is not given an event of a type it does not handle, which would change nothing', () => {
    spec.passesOver(event('UserNicknameChosen', { userId: 'u-1', nickname: 'annie' }), [
      registered('u-1'),
    ]);
  });

  it('throws on an event it cannot use, which the engine quarantines', () => {
    spec
      .given([])
      .when(event('UserRegistered', { userId: 'u-1', role: 'janitor' }))
      .thenThrows('UserRegistered.role is not a known role');
    spec
      .given([])
      .when(event('UserDeactivated', { reason: 'deleted' }))
      .thenThrows('UserDeactivated.userId is not a string');
  });
});
