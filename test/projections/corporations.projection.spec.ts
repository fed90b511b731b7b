import { corporationsProjection } from '../../projections/corporations.projection';
import type { UserProfile } from '../../src/directory/user.decider';
import {
  caseManager,
  corporationRegistered,
  corporationRenamed,
  corpUser,
  deactivated,
  profileUpdated,
  reactivated,
  registered,
} from './events';
import { event, projectionSpec } from './projection-spec';

/*
 * The corporation picker: every corporation the firm registered or a user
 * names, with its active corp users and foreign nationals.
 */
const spec = projectionSpec(corporationsProjection);

const foreignNational = (corporationId: string): UserProfile => ({
  ...corpUser(corporationId),
  role: 'foreign-national',
});
const corporation = (corporationId: string, changes: object = {}) => ({
  [`acme/${corporationId}`]: {
    firmId: 'acme',
    corporationId,
    name: null as string | null,
    nameKey: corporationId,
    nameFold: corporationId,
    corpUsers: 0,
    foreignNationals: 0,
    ...changes,
  },
});
const member = (userId: string, role: string, corporationId: string, active = true) => ({
  [`acme/${userId}`]: { firmId: 'acme', role, corporationId, active },
});

describe('Corporations projection', () => {
  it('lists a registered corporation by name, and follows a rename', () => {
    spec
      .given([])
      .when(corporationRegistered('c-1', 'Globex Corp'))
      .then({
        corporations: corporation('c-1', {
          name: 'Globex Corp',
          nameKey: 'globex corp',
          nameFold: 'globex corp',
        }),
      });
    spec
      .given([corporationRegistered('c-1', 'Globex Corp')])
      .when(corporationRenamed('c-1', 'Initech', 'Globex Corp'))
      .then({
        corporations: corporation('c-1', {
          name: 'Initech',
          nameKey: 'initech',
          nameFold: 'initech',
        }),
      });
  });

  it('counts the active corp users and foreign nationals of a corporation, listed even before it is registered', () => {
    spec
      .given([])
      .when(registered('u-1', corpUser('c-1')), registered('u-2', foreignNational('c-1')))
      .then({
        corporations: corporation('c-1', { corpUsers: 1, foreignNationals: 1 }),
        members: {
          ...member('u-1', 'corp-user', 'c-1'),
          ...member('u-2', 'foreign-national', 'c-1'),
        },
      });
    spec
      .given([registered('u-1', corpUser('c-1'))])
      .when(corporationRegistered('c-1', 'Globex Corp'))
      .then({
        corporations: corporation('c-1', {
          name: 'Globex Corp',
          nameKey: 'globex corp',
          nameFold: 'globex corp',
          corpUsers: 1,
        }),
      });
  });

  it('moves the count when a user moves to another corporation or leaves the corporate roles', () => {
    spec
      .given([registered('u-1', corpUser('c-1'))])
      .when(profileUpdated('u-1', corpUser('c-2')))
      .then({
        corporations: { ...corporation('c-1'), ...corporation('c-2', { corpUsers: 1 }) },
        members: member('u-1', 'corp-user', 'c-2'),
      });
    spec
      .given([registered('u-1', corpUser('c-1'))])
      .when(profileUpdated('u-1', caseManager))
      .then({ corporations: corporation('c-1'), members: {} });
  });

  it('counts a deactivated user out, and back in at its reactivation', () => {
    spec
      .given([registered('u-1', corpUser('c-1'))])
      .when(deactivated('u-1'))
      .then({
        corporations: corporation('c-1'),
        members: member('u-1', 'corp-user', 'c-1', false),
      });
    spec
      .given([registered('u-1', corpUser('c-1')), deactivated('u-1')])
      .when(reactivated('u-1'))
      .then({ corporations: corporation('c-1', { corpUsers: 1 }) });
  });

  it('keeps no case manager, and changes nothing for users it does not keep', () => {
    spec
      .given([])
      .when(registered('u-1'), deactivated('u-1'), reactivated('u-9'))
      .thenNothingChanges();
  });

  it('is not given an event of a type it does not handle, which would change nothing', () => {
    spec.passesOver(event('CorporationMerged', { corporationId: 'c-1', into: 'c-2' }), [
      corporationRegistered('c-1', 'Globex'),
    ]);
  });

  it('throws on an event it cannot use, which the engine quarantines', () => {
    spec
      .given([])
      .when(event('CorporationRegistered', { corporationId: 'c-1', name: null }))
      .thenThrows('CorporationRegistered.name is not a string');
    spec
      .given([])
      .when(event('UserRegistered', { userId: 'u-1', role: 'corp-user', corporationId: null }))
      .thenThrows('UserRegistered.corporationId is not a string');
  });
});
