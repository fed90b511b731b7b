import { RecordedEvent } from '../../src/event-store/event-store.port';
import { UpcasterChain } from '../../src/event-store/upcasting';

/** DESIGN §6: an old event shape is read through upcasters, never rewritten. */
describe('upcasting old event shapes', () => {
  const recorded = (
    type: string,
    schemaVersion: number,
    data: RecordedEvent['data'],
  ): RecordedEvent => ({
    type,
    data,
    streamId: 'user-acme/u1',
    revision: 0n,
    position: 1n,
    metadata: {
      eventId: 'e1',
      firmId: 'acme',
      actor: { id: 'host', role: 'host' },
      correlationId: 'c1',
      causationId: 'c1',
      commandId: 'c1',
      occurredAt: '2026-01-15T09:00:00.000Z',
      schemaVersion,
    },
  });

  // A made-up history: v1 had one `fullName`, v2 split it, v3 renamed the type.
  const chain = new UpcasterChain([
    {
      type: 'UserRegistered',
      fromVersion: 1,
      upcast: (data) => {
        const [first, ...rest] = String(data.fullName).split(' ');
        return { data: { givenName: first, familyName: rest.join(' ') } };
      },
    },
    { type: 'UserRegistered', fromVersion: 2, upcast: (data) => ({ type: 'UserSignedUp', data }) },
  ]);

  it('reads a version-1 event through every step to the current shape', () => {
    const current = chain.upcast(recorded('UserRegistered', 1, { fullName: 'Ada King Lovelace' }));
    expect(current.type).toBe('UserSignedUp');
    expect(current.data).toEqual({ givenName: 'Ada', familyName: 'King Lovelace' });
    expect(current.metadata.schemaVersion).toBe(3);
  });

  it('starts from the version the event was written with', () => {
    const current = chain.upcast(
      recorded('UserRegistered', 2, { givenName: 'Ada', familyName: 'King' }),
    );
    expect(current).toMatchObject({
      type: 'UserSignedUp',
      data: { givenName: 'Ada', familyName: 'King' },
    });
  });

  it('leaves the stored event untouched and passes current events through as they are', () => {
    const old = recorded('UserRegistered', 1, { fullName: 'Ada King' });
    chain.upcast(old);
    expect(old).toMatchObject({ type: 'UserRegistered', data: { fullName: 'Ada King' } });
    const other = recorded('CorporationRegistered', 1, { name: 'Globex' });
    expect(chain.upcast(other)).toBe(other);
  });
});
