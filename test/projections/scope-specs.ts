import type { Projection } from '../../src/projection-engine/projection';
import {
  activated,
  cancelled,
  caseManagersEnabled,
  corporationMode,
  emptyScopeOf,
  requested,
  specificCorporationRemoved,
  specificCorporationSet,
  vendorsEnabled,
} from './events';
import { projectionSpec } from './projection-spec';

/**
 * The firm's scope document (projections/mfa-scope.ts), which the enrolled
 * list and the counters keep alike to answer "is this user MFA-enabled" when
 * read (DESIGN §2): every subscription and enablement event it follows.
 */
export function itKeepsTheFirmsScope(projection: Projection): void {
  const spec = projectionSpec(projection);
  const scope = (changes: Partial<ReturnType<typeof emptyScopeOf>>) => ({
    scopes: { acme: { ...emptyScopeOf(), ...changes } },
  });

  it('keeps the subscription status of the firm', () => {
    spec
      .given([])
      .when(requested)
      .then(scope({ subscription: 'requested' }));
    spec
      .given([requested])
      .when(activated)
      .then(scope({ subscription: 'active' }));
    spec
      .given([requested, activated])
      .when(cancelled)
      .then(scope({ subscription: 'cancelled' }));
  });

  it('keeps the switches: case managers, vendor case managers, and the corporations mode', () => {
    spec
      .given([])
      .when(caseManagersEnabled(true))
      .then(scope({ caseManagers: true }));
    spec
      .given([caseManagersEnabled(true)])
      .when(caseManagersEnabled(false))
      .then(scope({}));
    spec
      .given([])
      .when(vendorsEnabled(true))
      .then(scope({ vendorCaseManagers: true }));
    spec
      .given([])
      .when(corporationMode('all', true, false))
      .then(scope({ allCorpUsers: true, allForeignNationals: false }));
    spec
      .given([corporationMode('all', true, true)])
      .when(corporationMode('specific', false, false))
      .then(scope({ mode: 'specific' }));
  });

  it('keeps the list of specific corporations, one entry per corporation', () => {
    spec
      .given([
        corporationMode('specific', false, false),
        specificCorporationSet('c-1', true, false),
      ])
      .when(specificCorporationSet('c-2', false, true), specificCorporationSet('c-1', true, true))
      .then(
        scope({
          mode: 'specific',
          specific: [
            { corporationId: 'c-2', corpUsers: false, foreignNationals: true },
            { corporationId: 'c-1', corpUsers: true, foreignNationals: true },
          ],
        }),
      );
    spec
      .given([
        specificCorporationSet('c-1', true, false),
        specificCorporationSet('c-2', true, true),
      ])
      .when(specificCorporationRemoved('c-1'))
      .then(
        scope({ specific: [{ corporationId: 'c-2', corpUsers: true, foreignNationals: true }] }),
      );
  });
}
