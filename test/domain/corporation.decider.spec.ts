import {
  CorporationCommand,
  corporationDecider,
  CorporationEvent,
} from '../../src/directory/corporation.decider';
import { deciderSpec } from '../support/decider-spec';

const now = '2026-01-15T09:00:00.000Z';
const spec = deciderSpec(corporationDecider, { now });
const corporationId = 'acme';

const registerOrRename = (name: string): CorporationCommand => ({
  type: 'RegisterOrRenameCorporation',
  corporationId,
  name,
});
const registered = (name: string): CorporationEvent => ({
  type: 'CorporationRegistered',
  data: { corporationId, name, registeredAt: now },
});
const renamed = (previousName: string, name: string): CorporationEvent => ({
  type: 'CorporationRenamed',
  data: { corporationId, name, previousName, renamedAt: now },
});

describe('Corporation (a corporate client of the firm, as the host syncs it)', () => {
  it('the host registers a corporation with its name', () => {
    spec
      .given([])
      .when(registerOrRename('Acme Corp'))
      .then([registered('Acme Corp')]);
  });

  it('a new name renames it, keeping the previous name', () => {
    spec
      .given([registered('Acme Corp')])
      .when(registerOrRename('Acme Inc.'))
      .then([renamed('Acme Corp', 'Acme Inc.')]);
  });

  it('the previous name is the latest one, after several renames', () => {
    spec
      .given([registered('Acme Corp'), renamed('Acme Corp', 'Acme Inc.')])
      .when(registerOrRename('Acme Holdings'))
      .then([renamed('Acme Inc.', 'Acme Holdings')]);
  });

  it('sending the same name again changes nothing', () => {
    spec
      .given([registered('Acme Corp')])
      .when(registerOrRename('Acme Corp'))
      .then([]);
    spec
      .given([registered('Acme Corp'), renamed('Acme Corp', 'Acme Inc.')])
      .when(registerOrRename('Acme Inc.'))
      .then([]);
  });
});
