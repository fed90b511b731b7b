import { fromDecoded } from '../../src/event-store/stored-event';

/*
 * The KurrentDB adapter reads what the official client decoded. For an event
 * stored as JSON whose bytes do not parse, the client hands back the raw text;
 * for non-JSON content, the bytes; for unparseable metadata, the bytes; for no
 * metadata, undefined (node_modules/@kurrent/kurrentdb-client/dist/utils/
 * convertGrpcEvent.js). None of them may throw or pass as an event.
 */
describe('Events decoded by a client', () => {
  const head = { position: 9n, streamId: 'user-acme/u-1', revision: 0n, type: 'UserRegistered' };
  const metadata = { eventId: 'e-1', firmId: 'acme' };

  it.each([
    ['readable', { userId: 'u-1' }, metadata, undefined],
    [
      'data that did not parse',
      '{"userId": ',
      metadata,
      'data is not valid JSON, or not a JSON object',
    ],
    ['data that is a JSON string', 'u-1', metadata, 'data is not valid JSON, or not a JSON object'],
    ['data that is a JSON array', ['u-1'], metadata, 'data is not a JSON object (array)'],
    ['binary data', new Uint8Array([1, 2]), metadata, 'data is not JSON (binary content)'],
    [
      'metadata that did not parse',
      { userId: 'u-1' },
      new Uint8Array([123]),
      'metadata is not JSON (binary content)',
    ],
    ['no metadata', { userId: 'u-1' }, undefined, 'metadata is missing'],
    ['neither', null, undefined, 'data is not a JSON object (null); metadata is missing'],
  ])('%s', (_name, data, meta, corrupt) => {
    const event = fromDecoded(head, data, meta);
    expect(event).toMatchObject(head);
    if (corrupt === undefined) {
      expect(event).toEqual({ ...head, data, metadata: meta });
      return;
    }
    expect(event.corrupt).toBe(corrupt);
    expect(event.data).toEqual({});
    expect(event.metadata).toEqual(meta === metadata ? metadata : {});
  });
});
