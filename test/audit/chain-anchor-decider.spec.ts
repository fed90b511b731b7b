import { AuditEvent, anchorDecider } from '../../src/audit/anchor.decider';
import { deciderSpec } from '../support/decider-spec';

/** The audit stream's decider (ADR 0017): one anchor per `through`, never a late or empty one. */
describe('Anchoring a firm’s stream heads', () => {
  const now = '2026-01-15T09:01:00.000Z';
  const spec = deciderSpec(anchorDecider, { now });
  const head = (streamId: string, revision = '0') => ({
    streamId,
    revision,
    hash: 'a'.repeat(64),
  });
  const anchored = (through: string): AuditEvent => ({
    type: 'StreamHeadsAnchored',
    data: { heads: [head('user-acme/ann')], through, anchoredAt: now },
  });

  it('records the heads, sorted by stream, with the position they cover', () => {
    spec
      .given([])
      .when({
        type: 'AnchorStreamHeads',
        heads: [head('user-acme/bob', '3'), head('subscription-acme', '7')],
        through: '42',
      })
      .then([
        {
          type: 'StreamHeadsAnchored',
          data: {
            heads: [head('subscription-acme', '7'), head('user-acme/bob', '3')],
            through: '42',
            anchoredAt: now,
          },
        },
      ]);
  });

  it('appends nothing for a position already covered: a retried or late anchor', () => {
    const command = { type: 'AnchorStreamHeads' as const, heads: [head('user-acme/ann')] };
    spec
      .given([anchored('42')])
      .when({ ...command, through: '42' })
      .then([]);
    spec
      .given([anchored('42')])
      .when({ ...command, through: '9' })
      .then([]);
    spec
      .given([anchored('42')])
      .when({ ...command, through: '43' })
      .then([anchored('43')]);
  });

  it('appends nothing when there is no head to name', () => {
    spec.given([]).when({ type: 'AnchorStreamHeads', heads: [], through: '5' }).then([]);
  });

  it('keeps its state in the last event, and a damaged one does not reset it', () => {
    expect(anchorDecider.stateIsInLastEvent).toBe(true);
    const damaged = { ...anchored('x'), data: { ...anchored('x').data, through: 'x' } };
    expect(anchorDecider.evolve({ through: 42n }, damaged)).toEqual({ through: 42n });
  });
});
