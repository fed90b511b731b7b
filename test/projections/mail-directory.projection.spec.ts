import { mailDirectoryProjection } from '../../projections/mail-directory.projection';
import {
  caseManager,
  corpUser,
  deactivated,
  enrollmentReset,
  profileUpdated,
  reactivated,
  registered,
} from './events';
import { event, projectionSpec } from './projection-spec';

/*
 * Who notification emails may go to (DESIGN §5): staff, invited to enroll,
 * and firm admins or billing-contact case managers, who receive the
 * license-usage emails. Whether they are active or enrolled is read from the
 * user's stream when an email is decided, so only role and flags are kept.
 */
const spec = projectionSpec(mailDirectoryProjection);

const person = (userId: string, role: string, billing: 0 | 1) => ({
  [`acme/${userId}`]: { firmId: 'acme', userId, role, billing },
});

describe('Mail directory projection', () => {
  it('keeps staff, and firm admins and billing-contact case managers as possible license-usage recipients', () => {
    spec
      .given([])
      .when(
        registered('u-1'),
        registered('u-2', { ...caseManager, role: 'vendor-case-manager' }),
        registered('u-3', { ...caseManager, billingContact: true }),
        registered('u-4', { ...corpUser('c-1'), firmAdmin: true }),
      )
      .then({
        people: {
          ...person('u-1', 'case-manager', 0),
          ...person('u-2', 'vendor-case-manager', 0),
          ...person('u-3', 'case-manager', 1),
          ...person('u-4', 'corp-user', 1),
        },
      });
  });

  it('keeps no other user: a billing-contact flag counts for case managers only', () => {
    spec
      .given([])
      .when(
        registered('u-1', corpUser('c-1')),
        registered('u-2', { ...corpUser('c-1'), billingContact: true }),
      )
      .thenNothingChanges();
  });

  it('follows a change of role or flags, and forgets a user who is neither staff nor recipient any more', () => {
    spec
      .given([registered('u-1')])
      .when(profileUpdated('u-1', { ...caseManager, billingContact: true }))
      .then({ people: person('u-1', 'case-manager', 1) });
    spec
      .given([registered('u-1')])
      .when(profileUpdated('u-1', corpUser('c-1')))
      .then({ people: {} });
    spec
      .given([])
      .when(profileUpdated('u-1', corpUser('c-1')))
      .thenNothingChanges();
  });

  it('is not given deactivations, resets or unknown types: they change nothing here', () => {
    spec.passesOver(deactivated('u-1'), [registered('u-1')]);
    spec.passesOver(enrollmentReset('u-1', []), [registered('u-1')]);
    spec.passesOver(reactivated('u-1'), [registered('u-1'), deactivated('u-1')]);
    spec.passesOver(event('UserNicknameChosen', { userId: 'u-1', nickname: 'annie' }));
  });

  it('throws on an event it cannot use, which the engine quarantines', () => {
    spec
      .given([])
      .when(event('UserRegistered', { userId: 'u-1', role: 'janitor' }))
      .thenThrows('UserRegistered.role is not a known role');
    spec
      .given([])
      .when(event('UserProfileUpdated', { role: 'case-manager' }))
      .thenThrows('UserProfileUpdated.userId is not a string');
  });
});
