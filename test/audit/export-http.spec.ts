import { EVENT_STORE, EventStore, RecordedEvent } from '../../src/event-store/event-store.port';
import { firmOfStream } from '../../src/audit/export-format';
import { redactKeyMaterial } from '../../src/shared/event-hash';
import { streams } from '../../src/shared/ids';
import { RunningService, startService, TestClock, token } from '../support/harness';
import { newEvent } from '../support/log-events';
import { settled } from './audit-fixtures';
import {
  activeFirm,
  enrollTotp,
  expectOk,
  mfaPath,
  registerUser,
  superuserOf,
} from '../support/mfa';

/*
 * API.md "Audit": GET /v1/audit/firms/{firmId}/events streams the firm's
 * events in log order as NDJSON, ending with a trailer; only the firm's
 * auditors reach it; key material never leaves; bad filters are refused
 * before a byte is sent.
 */

const auditorOf = (firmId: string) => token('auditor', { firm: firmId, sub: 'auditor-1' });

interface Exported {
  status: number;
  contentType: string | null;
  text: string;
  lines: any[];
  trailer: any;
  body: any;
}

async function exportOf(
  service: RunningService,
  firmId: string,
  query = '',
  bearer: string | undefined = auditorOf(firmId),
): Promise<Exported> {
  const response = await fetch(`${service.api.baseUrl}/v1/audit/firms/${firmId}/events${query}`, {
    headers: bearer === undefined ? {} : { authorization: `Bearer ${bearer}` },
  });
  const text = await response.text();
  const contentType = response.headers.get('content-type');
  if (!contentType?.startsWith('application/x-ndjson')) {
    return {
      status: response.status,
      contentType,
      text,
      lines: [],
      trailer: undefined,
      body: JSON.parse(text),
    };
  }
  const all = text
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line));
  return {
    status: response.status,
    contentType,
    text,
    lines: all.slice(0, -1),
    trailer: all[all.length - 1]?.trailer,
    body: undefined,
  };
}

/** The line the export must hold for a stored event. */
const lineOf = (event: RecordedEvent) => ({
  position: event.position.toString(),
  streamId: event.streamId,
  revision: event.revision.toString(),
  type: event.type,
  data: redactKeyMaterial(event.type, event.data),
  metadata: event.metadata,
});

function base32Decode(text: string): Buffer {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const char of text.replace(/=+$/, '')) {
    bits += alphabet.indexOf(char).toString(2).padStart(5, '0');
  }
  return Buffer.from((bits.match(/.{8}/g) ?? []).map((byte) => parseInt(byte, 2)));
}

/** A TOTP secret in every text encoding an export could carry it in. */
function encodingsOf(base32: string): Array<[string, string]> {
  const raw = base32Decode(base32);
  return [
    ['base32', base32],
    ['base32, lower case', base32.toLowerCase()],
    ['hex', raw.toString('hex')],
    ['HEX', raw.toString('hex').toUpperCase()],
    ['base64', raw.toString('base64').replace(/=+$/, '')],
    ['base64url', raw.toString('base64url')],
  ];
}

describe('audit export over HTTP', () => {
  const clock = new TestClock(new Date('2026-01-15T09:00:00.000Z'));
  let service: RunningService;
  let secret: string;
  /** When each step of the history happened. */
  const at: Record<string, string> = {};

  beforeAll(async () => {
    // The fixture moves the clock by hours, which makes a time-based anchor due; its writer
    // ticks on its own, so an anchor could land between reading the log and an export
    // (it did, under load). Anchors are chain-anchors.spec's subject: none is due here.
    service = await startService({
      clock,
      env: { RATE_LIMIT_PER_USER: 'off', AUDIT_ANCHOR_SECONDS: '86400' },
    });
    const api = service.api;
    at.activated = clock.now().toISOString();
    await activeFirm(api, 'acme', 10);
    await activeFirm(api, 'acme-2', 10);
    clock.advance(3_600_000);
    at.registered = clock.now().toISOString();
    await registerUser(api, 'acme', 'ann');
    await registerUser(api, 'acme', 'bob');
    // The same user id in the look-alike firm.
    await registerUser(api, 'acme-2', 'ann');
    clock.advance(3_600_000);
    at.enrolled = clock.now().toISOString();
    secret = (await enrollTotp(api, 'acme', 'ann', clock.now())).secret;
    await enrollTotp(api, 'acme-2', 'ann', clock.now());
    clock.advance(3_600_000);
    at.reset = clock.now().toISOString();
    expectOk(
      await api.post(`${mfaPath('acme', 'ann')}/reset`, superuserOf('acme'), { reason: 'lost' }),
    );
    // A security key's registration with its seat, as the enrollment slice writes them
    // (one atomic append): its public key is key material.
    await service.app.get<EventStore>(EVENT_STORE).appendToStreams([
      {
        streamId: streams.subscription('acme'),
        expectedRevision: 'any',
        events: [
          newEvent('acme', 'SeatAssigned', {
            userId: 'bob',
            assignedAt: at.reset,
            generation: 0,
            enrollmentId: 'enr-key',
          }),
        ].map((e) => ({ ...e, metadata: { ...e.metadata, schemaVersion: 2 } })),
      },
      {
        streamId: streams.user('acme', 'bob'),
        expectedRevision: 'any',
        events: [
          newEvent('acme', 'FactorConfirmed', {
            userId: 'bob',
            factorId: 'f-key',
            enrollmentId: 'enr-key',
            factorType: 'webauthn',
            label: 'key',
            generation: 0,
            confirmedAt: at.reset,
            credential: {
              credentialId: 'Y3JlZC1ib2I',
              publicKey: 'pQECAyYgASFYIGJvYi1wdWJsaWMta2V5',
              counter: 0,
            },
          }),
        ],
      },
    ]);
    await settled(service);
  });
  afterAll(() => service?.stop());

  const firmEvents = async (firmId: string) =>
    (await service.events()).filter((event) => firmOfStream(event.streamId) === firmId);

  it('streams every event of the firm in log order, as NDJSON, and a trailer that counts them', async () => {
    const exported = await exportOf(service, 'acme');
    expect(exported.status).toBe(200);
    expect(exported.contentType).toMatch(/^application\/x-ndjson/);
    const expected = await firmEvents('acme');
    expect(expected.length).toBeGreaterThan(10);
    expect(exported.lines).toEqual(expected.map(lineOf));
    expect(exported.text.endsWith('\n')).toBe(true);
    expect(exported.trailer).toMatchObject({
      firmId: 'acme',
      filters: { from: null, to: null, types: null, userId: null },
      exportedAt: clock.now().toISOString(),
      events: expected.length,
      corrupt: 0,
      firstPosition: expected[0].position.toString(),
      lastPosition: expected[expected.length - 1].position.toString(),
      digest: expect.stringMatching(/^[0-9a-f]{64}$/),
    });
    // One head per stream: its last event.
    const streamIds = [...new Set(expected.map((event) => event.streamId))].sort();
    expect(exported.trailer.heads.map((head: any) => head.streamId)).toEqual(streamIds);
    const bobsLast = expected.filter((event) => event.streamId === 'user-acme/bob').pop()!;
    expect(exported.trailer.heads).toContainEqual({
      streamId: 'user-acme/bob',
      revision: bobsLast.revision.toString(),
      hash: expect.stringMatching(/^[0-9a-f]{64}$/),
    });
  });

  it('never mixes in the events of a firm whose id only looks alike, nor theirs with ours', async () => {
    const ours = await exportOf(service, 'acme');
    const theirs = await exportOf(service, 'acme-2');
    expect(ours.lines.every((line) => line.metadata.firmId === 'acme')).toBe(true);
    expect(ours.lines.every((line) => firmOfStream(line.streamId) === 'acme')).toBe(true);
    expect(theirs.lines.map((line) => line.position)).toEqual(
      (await firmEvents('acme-2')).map((event) => event.position.toString()),
    );
    expect(theirs.lines.every((line) => line.metadata.firmId === 'acme-2')).toBe(true);
    const positions = new Set(ours.lines.map((line) => line.position));
    expect(theirs.lines.some((line) => positions.has(line.position))).toBe(false);
    const nobody = await exportOf(service, 'acm');
    expect(nobody.lines).toEqual([]);
    expect(nobody.trailer).toMatchObject({ events: 0, firstPosition: null, heads: [] });
  });

  it('holds no TOTP secret in any encoding, no sealed secret, no public key: their digests only', async () => {
    const exported = await exportOf(service, 'acme');
    for (const [encoding, text] of encodingsOf(secret)) {
      expect({ encoding, found: exported.text.includes(text) }).toEqual({ encoding, found: false });
    }
    const started = (await firmEvents('acme')).filter((e) => e.type === 'TotpEnrollmentStarted');
    expect(started).toHaveLength(1);
    const sealed = started[0].data.secret as Record<string, string>;
    const sealedParts = Object.entries(sealed).filter(([, value]) => value.length >= 12);
    expect(sealedParts.length).toBeGreaterThan(0);
    for (const [field, value] of sealedParts) {
      expect({ field, found: exported.text.includes(value) }).toEqual({ field, found: false });
    }
    expect(exported.text).not.toContain('pQECAyYgASFYIGJvYi1wdWJsaWMta2V5');
    const startedLine = exported.lines.find((line) => line.type === 'TotpEnrollmentStarted');
    expect(startedLine.data.secret).toEqual({
      redacted: expect.stringMatching(/^sha256:[0-9a-f]{64}$/),
    });
    const keyLine = exported.lines.find((line) => line.data.factorId === 'f-key');
    expect(keyLine.data.credential).toEqual({
      credentialId: 'Y3JlZC1ib2I',
      publicKey: { redacted: expect.stringMatching(/^sha256:/) },
      counter: 0,
    });
  });

  it('filters by type, by user and by time (from inclusive, to exclusive)', async () => {
    const all = (await firmEvents('acme')).map(lineOf);
    const byType = await exportOf(service, 'acme', '?type=FactorConfirmed');
    expect(byType.lines).toEqual(all.filter((line) => line.type === 'FactorConfirmed'));
    expect(byType.lines.length).toBe(2);
    expect(byType.trailer.filters).toEqual({
      from: null,
      to: null,
      types: ['FactorConfirmed'],
      userId: null,
    });

    const twoTypes = await exportOf(service, 'acme', '?type=EnrollmentReset,UserRegistered');
    expect(twoTypes.lines).toEqual(
      all.filter((line) => ['EnrollmentReset', 'UserRegistered'].includes(line.type)),
    );
    expect(twoTypes.trailer.filters.types).toEqual(['EnrollmentReset', 'UserRegistered']);

    const ann = await exportOf(service, 'acme', '?userId=ann');
    expect(ann.lines).toEqual(all.filter((line) => line.data.userId === 'ann'));
    expect(ann.lines.map((line) => line.type)).toEqual(
      expect.arrayContaining([
        'UserRegistered',
        'FactorConfirmed',
        'EnrollmentReset',
        'SeatAssigned',
      ]),
    );

    // Exactly at `from`: in. Exactly at `to`: out.
    const window = await exportOf(
      service,
      'acme',
      `?from=${encodeURIComponent(at.registered)}&to=${encodeURIComponent(at.reset)}`,
    );
    const inWindow = all.filter(
      (line) =>
        String(line.metadata.occurredAt) >= at.registered &&
        String(line.metadata.occurredAt) < at.reset,
    );
    expect(window.lines).toEqual(inWindow);
    expect(window.lines.some((line) => line.metadata.occurredAt === at.registered)).toBe(true);
    expect(window.lines.some((line) => line.metadata.occurredAt === at.reset)).toBe(false);
    expect(all.some((line) => line.metadata.occurredAt === at.reset)).toBe(true);

    // An offset names the same moment; a date alone is midnight UTC.
    const offset = await exportOf(
      service,
      'acme',
      `?from=${encodeURIComponent('2026-01-15T11:00:00+01:00')}`,
    );
    expect(offset.lines).toEqual(
      all.filter((line) => String(line.metadata.occurredAt) >= at.registered),
    );
    expect((await exportOf(service, 'acme', '?to=2026-01-15')).lines).toEqual([]);

    const combined = await exportOf(
      service,
      'acme',
      `?type=FactorConfirmed&userId=ann&from=${encodeURIComponent(at.enrolled)}`,
    );
    expect(combined.lines).toEqual(
      all.filter(
        (line) =>
          line.type === 'FactorConfirmed' &&
          line.data.userId === 'ann' &&
          String(line.metadata.occurredAt) >= at.enrolled,
      ),
    );
    expect(combined.lines).toHaveLength(1);
  });

  it.each([
    ['from=yesterday', 'from'],
    ['from=2026-02-30T00:00:00Z', 'from'],
    ['from=2026-01-15T09:00:00', 'from'],
    ['to=2026-01-15T09:00:00Z&from=2026-01-15T10:00:00Z', 'to'],
    ['to=2026-01-15T09:00:00Z&from=2026-01-15T09:00:00Z', 'to'],
    ['type=NoSuchEvent', 'type'],
    ['type=FactorConfirmed,', 'type'],
    ['type=', 'type'],
    ['userId=a%20b', 'userId'],
    ['type=FactorConfirmed&type=UserRegistered', 'type'],
    ['unknown=1', 'unknown'],
  ])('refuses ?%s with a 400 naming %s, before streaming anything', async (query, field) => {
    const refused = await exportOf(service, 'acme', `?${query}`);
    expect(refused.status).toBe(400);
    expect(refused.contentType).toMatch(/^application\/problem\+json/);
    expect(refused.body.type).toBe('/problems/validation-failed');
    expect(refused.body.errors.map((error: any) => error.field)).toContain(field);
  });

  describe('who may export', () => {
    const paths = ['/events', '/state?asOf=2026-01-15T12:00:00Z'];
    it.each(paths)('%s: only an auditor of the firm, or of every firm', async (path) => {
      const url = (firmId: string) => `${service.api.baseUrl}/v1/audit/firms/${firmId}${path}`;
      const get = async (bearer?: string, firmId = 'acme') => {
        const response = await fetch(url(firmId), {
          headers: bearer === undefined ? {} : { authorization: `Bearer ${bearer}` },
        });
        const text = await response.text();
        return { status: response.status, type: response.headers.get('content-type'), text };
      };
      const none = await get();
      expect(none.status).toBe(401);
      expect(none.type).toMatch(/^application\/problem\+json/);
      for (const bearer of [
        token('operator'),
        token('operator', { firm: 'acme' }),
        superuserOf('acme'),
        token('host'),
        token('user', { firm: 'acme', sub: 'ann' }),
        auditorOf('acme-2'),
      ]) {
        const refused = await get(bearer);
        expect(refused.status).toBe(403);
        expect(refused.type).toMatch(/^application\/problem\+json/);
        expect(refused.text).not.toContain('ann');
      }
      expect((await get(auditorOf('acme'))).status).toBe(200);
      // An auditor token without a firm claim is the platform's: every firm.
      expect((await get(token('auditor'), 'acme-2')).status).toBe(200);
    });
  });
});
