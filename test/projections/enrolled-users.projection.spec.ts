import { enrolledUsersProjection } from '../../projections/enrolled-users.projection';
import {
  caseManager,
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
 * The Enrolled Users list (DESIGN §3: a user holds a seat exactly while it has
 * a confirmed factor): a profile per registered user, and an entry per user
 * with at least one factor confirmed since the last reset.
 */
const spec = projectionSpec(enrolledUsersProjection);
const LATER = '2026-01-16T09:00:00.000Z';

const profile = (changes: object = {}) => ({
  'acme/u-1': {
    firmId: 'acme',
    userId: 'u-1',
    name: 'Ann Smith',
    email: 'ann@example.com',
    organization: 'Acme Law',
    role: 'case-manager',
    corporationId: null,
    active: true,
    factors: [] as object[],
    ...changes,
  },
});
const totp = { factorId: 'f-1', type: 'totp', confirmedAt: T };
const entry = (changes: object = {}) => ({
  'acme/u-1': {
    firmId: 'acme',
    userId: 'u-1',
    name: 'Ann Smith',
    email: 'ann@example.com',
    organization: 'Acme Law',
    role: 'case-manager',
    corporationId: null,
    active: true,
    factors: ['totp'],
    enrolledAt: T,
    nameKey: 'ann smith',
    nameFold: 'ann smith',
    orgFold: 'acme law',
    ...changes,
  },
});

describe('Enrolled users projection', () => {
  it('keeps a profile for every registered user, and lists nobody before a factor is confirmed', () => {
    spec.given([]).when(registered('u-1')).then({ profiles: profile(), entries: {} });
  });

  it('lists a user from the first confirmed factor, with the distinct factor types and when it enrolled', () => {
    spec
      .given([registered('u-1')])
      .when(factorConfirmed('u-1', 'f-1'))
      .then({ profiles: profile({ factors: [totp] }), entries: entry() });
    const key = { factorId: 'f-2', type: 'webauthn', confirmedAt: LATER };
    spec
      .given([registered('u-1'), factorConfirmed('u-1', 'f-1')])
      .when(
        factorConfirmed('u-1', 'f-2', 'webauthn', LATER),
        factorConfirmed('u-1', 'f-3', 'totp', LATER),
      )
      .then({
        profiles: profile({
          factors: [totp, key, { ...totp, factorId: 'f-3', confirmedAt: LATER }],
        }),
        entries: entry({ factors: ['totp', 'webauthn'] }),
      });
  });

  it('changes nothing for a factor confirmed twice, or for a user never registered', () => {
    spec
      .given([registered('u-1'), factorConfirmed('u-1', 'f-1')])
      .when(factorConfirmed('u-1', 'f-1'))
      .thenNothingChanges();
    spec.given([]).when(factorConfirmed('u-9', 'f-9')).thenNothingChanges();
  });

  it('takes a profile update into the entry, keeping the factors', () => {
    spec
      .given([registered('u-1'), factorConfirmed('u-1', 'f-1')])
      .when(profileUpdated('u-1', { ...caseManager, name: 'Ann Jones', organization: null }))
      .then({
        profiles: profile({ name: 'Ann Jones', organization: null, factors: [totp] }),
        entries: entry({
          name: 'Ann Jones',
          organization: null,
          nameKey: 'ann jones',
          nameFold: 'ann jones',
          orgFold: '',
        }),
      });
  });

  it('keeps the name in lower case for the order, and folded copies for the search', () => {
    const name = 'JOSÉ Strauß';
    spec
      .given([registered('u-1'), factorConfirmed('u-1', 'f-1')])
      .when(profileUpdated('u-1', { ...caseManager, name, organization: 'Müller & Söhne' }))
      .then({
        profiles: profile({ name, organization: 'Müller & Söhne', factors: [totp] }),
        entries: entry({
          name,
          organization: 'Müller & Söhne',
          nameKey: 'josé strauß',
          nameFold: 'jose strauss',
          orgFold: 'muller & sohne',
        }),
      });
  });

  it('keeps a deactivated user listed until the reset that comes with the deactivation; a reactivation restores no factor', () => {
    const enrolled = [registered('u-1'), factorConfirmed('u-1', 'f-1')];
    spec
      .given(enrolled)
      .when(deactivated('u-1'))
      .then({
        profiles: profile({ active: false, factors: [totp] }),
        entries: entry({ active: false }),
      });
    spec
      .given([...enrolled, deactivated('u-1')])
      .when(enrollmentReset('u-1', ['f-1']), reactivated('u-1'))
      .then({ profiles: profile(), entries: {} });
  });

  it('takes a user off the list at a reset, and lists it again from its next confirmation', () => {
    const enrolled = [registered('u-1'), factorConfirmed('u-1', 'f-1')];
    spec
      .given(enrolled)
      .when(enrollmentReset('u-1', ['f-1']))
      .then({ profiles: profile(), entries: {} });
    spec
      .given([...enrolled, enrollmentReset('u-1', ['f-1'])])
      .when(factorConfirmed('u-1', 'f-2', 'webauthn', LATER))
      .then({
        profiles: profile({ factors: [{ factorId: 'f-2', type: 'webauthn', confirmedAt: LATER }] }),
        entries: entry({ factors: ['webauthn'], enrolledAt: LATER }),
      });
    spec
      .given([registered('u-1')])
      .when(enrollmentReset('u-1', []))
      .thenNothingChanges();
  });

  itKeepsTheFirmsScope(enrolledUsersProjection);

  it('is not given an event of a type it does not handle, which would change nothing', () => {
    spec.passesOver(event('UserNicknameChosen', { userId: 'u-1', nickname: 'annie' }), [
      registered('u-1'),
    ]);
  });

  it('throws on an event it cannot use, which the engine quarantines', () => {
    spec
      .given([])
      .when(event('UserRegistered', { userId: 'u-1', role: 'case-manager', name: 42 }))
      .thenThrows('UserRegistered.name is not a string');
    spec
      .given([])
      .when(event('UserRegistered', { userId: 'u-1', role: 'janitor', name: 'A', email: 'a@x' }))
      .thenThrows('UserRegistered.role is not a known role');
    spec
      .given([registered('u-1')])
      .when(event('FactorConfirmed', { userId: 'u-1', factorId: 'f-1', factorType: 'sms' }))
      .thenThrows('FactorConfirmed.factorType sms is not totp or webauthn');
  });
});
