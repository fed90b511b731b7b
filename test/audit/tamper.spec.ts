import Database from 'better-sqlite3';
import { cpSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { verifyFirmChains } from '../../src/audit/chain-verification';
import type { RecordedEvent } from '../../src/event-store/event-store.port';
import { chainLinkOf, eventHash, redactKeyMaterial } from '../../src/shared/event-hash';
import { firmOfStream, streams } from '../../src/shared/ids';
import { readLog, RunningService, startService, tempDir, TestClock } from '../support/harness';
import {
  activeFirm,
  enrollTotp,
  expectOk,
  host,
  mfaPath,
  operator,
  registerUser,
  superuserOf,
} from '../support/mfa';
import { anchorAfter, settled } from './settle';

/*
 * Issue 14, tamper evidence (ADR 0017): a real data folder, written by the
 * service, copied, and altered in `events.sqlite` the way someone with access
 * to the database could. Each time the verification names the first position
 * where the history is broken; the untouched copy verifies; history written
 * before chains verifies as "unchained before N". Two firms with look-alike
 * ids (`acme`, `acme-2`) show that one firm's verification reads only its own
 * events and is not disturbed by the other's.
 */

const FIRMS = ['acme', 'acme-2'];
const dirs: string[] = [];
afterAll(() => dirs.forEach((dir) => rmSync(dir, { recursive: true, force: true })));

/** Every event of the firm in the data folder, in log order, as stored. */
async function firmLog(dataDir: string, firmId: string): Promise<RecordedEvent[]> {
  return (await readLog(dataDir)).filter((event) => firmOfStream(event.streamId) === firmId);
}

/** A copy of the data folder with `events.sqlite` altered by `tamper`. */
function tamperedCopy(dataDir: string, tamper: (db: Database.Database) => void): string {
  const copy = tempDir('mfa-tampered-');
  dirs.push(copy);
  cpSync(dataDir, copy, { recursive: true });
  const db = new Database(join(copy, 'events.sqlite'));
  try {
    tamper(db);
  } finally {
    db.close();
  }
  return copy;
}

const verifyFolder = async (dataDir: string, firmId: string) =>
  verifyFirmChains(await firmLog(dataDir, firmId), firmId);

/** The scripted history of one firm: enrollments, a reset, a deactivation, a license change. */
async function script(service: RunningService, clock: TestClock, firmId: string): Promise<void> {
  const { api } = service;
  await activeFirm(api, firmId, 5);
  for (const userId of ['ann', 'bob', 'cid']) await registerUser(api, firmId, userId);
  await enrollTotp(api, firmId, 'ann', clock.now());
  await enrollTotp(api, firmId, 'bob', clock.now());
  expectOk(
    await api.post(`${mfaPath(firmId, 'bob')}/reset`, superuserOf(firmId), {
      reason: 'Lost phone',
    }),
  );
  expectOk(await api.post(`/v1/firms/${firmId}/users/cid/deactivate`, host, { reason: 'deleted' }));
  expectOk(await api.put(`/v1/firms/${firmId}/mfa/licenses`, operator, { licenseCount: 8 }));
  await enrollTotp(api, firmId, 'ann', clock.now());
}

/** Rows as the SQL below needs them. */
interface Row {
  position: number;
  event_id: string;
  stream_id: string;
  revision: number;
  type: string;
  data: string;
  metadata: string;
}

describe('Tampering with a copy of the data folder', () => {
  const clock = new TestClock();
  const dataDir = tempDir('mfa-audited-');
  dirs.push(dataDir);
  let log: RecordedEvent[];

  beforeAll(async () => {
    // Anchors every 8 events of a firm, and the rest once the clock has moved a minute on.
    const service = await startService({ dataDir, clock, env: { AUDIT_ANCHOR_EVERY: '8' } });
    try {
      for (const firmId of FIRMS) await script(service, clock, firmId);
      await settled(service);
      const head = (await service.events()).at(-1)!.position;
      clock.advance(61_000);
      for (const firmId of FIRMS) await anchorAfter(service, firmId, head);
      // After the last anchor: one more change, which no anchor covers.
      await registerUser(service.api, 'acme', 'dan');
      await settled(service);
    } finally {
      await service.stop();
    }
    log = await firmLog(dataDir, 'acme');
  });

  const anchors = () => log.filter((event) => event.streamId === streams.audit('acme'));
  const eventOf = (streamId: string, type: string) =>
    log.find((event) => event.streamId === streamId && event.type === type)!;
  const nextInStream = (event: RecordedEvent) =>
    log.find((e) => e.streamId === event.streamId && e.revision === event.revision + 1n)!;

  it('an untouched history verifies, every event of the firm counted, and only the firm’s', async () => {
    expect(anchors().length).toBeGreaterThanOrEqual(2);
    for (const firmId of FIRMS) {
      const events = await firmLog(dataDir, firmId);
      expect(events.length).toBeGreaterThan(20);
      expect(await verifyFolder(dataDir, firmId)).toEqual({
        ok: true,
        eventsChecked: events.length,
      });
    }
    // Look-alike ids: no event of acme-2 is counted as acme's.
    expect(log.every((event) => event.metadata.firmId === 'acme')).toBe(true);
  });

  it('names an event whose data was edited', async () => {
    const edited = eventOf(streams.subscription('acme'), 'LicenseCountChanged');
    const copy = tamperedCopy(dataDir, (db) =>
      db
        .prepare(
          `UPDATE events SET data = json_set(data, '$.licenseCount', 500) WHERE position = ?`,
        )
        .run(edited.position),
    );
    expect(await verifyFolder(copy, 'acme')).toMatchObject({
      ok: false,
      firstBrokenPosition: String(edited.position),
      reason: expect.stringMatching(/^edited: /),
    });
    // The other firm is not disturbed.
    expect(await verifyFolder(copy, 'acme-2')).toMatchObject({ ok: true });
  });

  it('names an event whose key material was replaced by its digest, which leaves its hash as it was', async () => {
    const started = eventOf(streams.user('acme', 'ann'), 'TotpEnrollmentStarted');
    const copy = tamperedCopy(dataDir, (db) =>
      db
        .prepare('UPDATE events SET data = ? WHERE position = ?')
        .run(JSON.stringify(redactKeyMaterial(started.type, started.data)), started.position),
    );
    expect(await verifyFolder(copy, 'acme')).toMatchObject({
      ok: false,
      firstBrokenPosition: String(started.position),
      reason: expect.stringMatching(/^key-material-removed: /),
    });
  });

  it('names the next event of the stream when the edited event’s own hash was recomputed', async () => {
    const edited = eventOf(streams.user('acme', 'ann'), 'FactorConfirmed');
    const copy = tamperedCopy(dataDir, (db) => {
      const data = { ...edited.data, label: 'tampered' };
      const metadata = edited.metadata as unknown as Record<string, unknown>;
      const hash = eventHash({ ...edited, data }, metadata.previousHash as string);
      db.prepare('UPDATE events SET data = ?, metadata = ? WHERE position = ?').run(
        JSON.stringify(data),
        JSON.stringify({ ...metadata, hash }),
        edited.position,
      );
    });
    // Seen at the stream's next event, or earlier at an anchor that named the event.
    const naming = anchors().find((anchor) =>
      (anchor.data.heads as Array<{ streamId: string; revision: string }>).some(
        (head) => head.streamId === edited.streamId && head.revision === String(edited.revision),
      ),
    );
    const next = nextInStream(edited);
    const [position, code] =
      naming && naming.position < next.position
        ? [naming.position, 'anchor-mismatch']
        : [next.position, 'chain-link'];
    expect(await verifyFolder(copy, 'acme')).toMatchObject({
      ok: false,
      firstBrokenPosition: String(position),
      reason: expect.stringMatching(new RegExp(`^${code}: `)),
    });
  });

  it('names the next event of the stream when one was deleted in the middle', async () => {
    const deleted = eventOf(streams.user('acme', 'ann'), 'TotpEnrollmentStarted');
    const copy = tamperedCopy(dataDir, (db) =>
      db.prepare('DELETE FROM events WHERE position = ?').run(deleted.position),
    );
    expect(await verifyFolder(copy, 'acme')).toMatchObject({
      ok: false,
      firstBrokenPosition: String(nextInStream(deleted).position),
      reason: expect.stringMatching(/^revision-gap: /),
    });
  });

  it('names the first anchor that covered a stream’s last event, once that event is deleted', async () => {
    // A stream whose last event an anchor names (it has not changed since).
    const lastOf = (streamId: string) => log.filter((e) => e.streamId === streamId).at(-1)!;
    const covering = anchors().flatMap((anchor) =>
      (anchor.data.heads as Array<{ streamId: string; revision: string }>)
        .filter((head) => lastOf(head.streamId).revision === BigInt(head.revision))
        .map((head) => ({ anchor, deleted: lastOf(head.streamId) })),
    );
    const [{ anchor, deleted }] = covering;
    const copy = tamperedCopy(dataDir, (db) =>
      db.prepare('DELETE FROM events WHERE position = ?').run(deleted.position),
    );
    expect(deleted.position).toBeLessThan(anchor.position);
    expect(await verifyFolder(copy, 'acme')).toMatchObject({
      ok: false,
      firstBrokenPosition: String(anchor.position),
      reason: expect.stringMatching(/^stream-truncated: /),
    });
  });

  it('does not see the deletion of a stream’s last event that no anchor covers yet (the documented window)', async () => {
    const last = log.at(-1)!;
    const named = anchors().flatMap(
      (anchor) => anchor.data.heads as Array<{ streamId: string; revision: string }>,
    );
    expect(named).not.toContainEqual(
      expect.objectContaining({ streamId: last.streamId, revision: String(last.revision) }),
    );
    const copy = tamperedCopy(dataDir, (db) =>
      db.prepare('DELETE FROM events WHERE position = ?').run(last.position),
    );
    expect(await verifyFolder(copy, 'acme')).toEqual({ ok: true, eventsChecked: log.length - 1 });
  });

  it('names an event inserted in the middle of a stream, even one hashed and linked as the service would', async () => {
    const stream = streams.user('acme', 'ann');
    const before = eventOf(stream, 'UserRegistered');
    const after = nextInStream(before);
    const copy = tamperedCopy(dataDir, (db) => {
      // Room at revision 1: the later revisions move up by one (in two steps: they are unique).
      db.prepare(
        'UPDATE events SET revision = -revision - 1 WHERE stream_id = ? AND revision > ?',
      ).run(stream, before.revision);
      db.prepare('UPDATE events SET revision = -revision WHERE stream_id = ? AND revision < 0').run(
        stream,
      );
      const forged: RecordedEvent = {
        ...before,
        revision: before.revision + 1n,
        type: 'UserProfileUpdated',
        data: { userId: 'ann', changes: { email: 'attacker@evil.example' } },
        metadata: { ...before.metadata, eventId: 'forged-event' },
      };
      const previousHash = chainLinkOf(before.metadata)!.hash;
      const metadata = { ...forged.metadata, hash: eventHash(forged, previousHash), previousHash };
      db.prepare(
        'INSERT INTO events (event_id, stream_id, revision, type, data, metadata) VALUES (?, ?, ?, ?, ?, ?)',
      ).run(
        'forged-event',
        stream,
        forged.revision,
        forged.type,
        JSON.stringify(forged.data),
        JSON.stringify(metadata),
      );
    });
    expect(await verifyFolder(copy, 'acme')).toMatchObject({
      ok: false,
      firstBrokenPosition: String(after.position),
      reason: expect.stringMatching(/^revision-gap: /),
    });
  });

  it('names an event appended without a chain, as an old version or a hand would', async () => {
    const stream = streams.user('acme', 'bob');
    const model = log.filter((e) => e.streamId === stream).at(-1)!;
    let position = 0n;
    const copy = tamperedCopy(dataDir, (db) => {
      const {
        hash: _hash,
        previousHash: _previous,
        ...metadata
      } = model.metadata as unknown as Record<string, unknown>;
      const info = db
        .prepare(
          'INSERT INTO events (event_id, stream_id, revision, type, data, metadata) VALUES (?, ?, ?, ?, ?, ?)',
        )
        .run(
          'appended-by-hand',
          stream,
          model.revision + 1n,
          'UserReactivated',
          JSON.stringify({ userId: 'bob' }),
          JSON.stringify({ ...metadata, eventId: 'appended-by-hand' }),
        );
      position = BigInt(info.lastInsertRowid);
    });
    expect(await verifyFolder(copy, 'acme')).toMatchObject({
      ok: false,
      firstBrokenPosition: String(position),
      reason: expect.stringMatching(/^unchained-event: /),
    });
  });

  it('names the first of two events of a stream swapped', async () => {
    const stream = streams.user('acme', 'ann');
    const [first, second] = log.filter((e) => e.streamId === stream).slice(1, 3);
    const swap = (db: Database.Database, columns: Array<keyof Row>) => {
      const read = db.prepare('SELECT * FROM events WHERE position = ?');
      const a = read.get(first.position) as Row;
      const b = read.get(second.position) as Row;
      const assign = columns.map((column) => `${column} = @${column}`).join(', ');
      const write = db.prepare(`UPDATE events SET ${assign} WHERE position = @position`);
      // Unique columns step aside first.
      db.prepare(
        `UPDATE events SET event_id = event_id || '~', revision = -1 - revision WHERE position IN (?, ?)`,
      ).run(first.position, second.position);
      write.run({ ...b, position: a.position });
      write.run({ ...a, position: b.position });
    };
    // The rows change places whole (content and revision): the stream's revisions go back.
    const rowsSwapped = tamperedCopy(dataDir, (db) =>
      swap(db, ['event_id', 'stream_id', 'revision', 'type', 'data', 'metadata']),
    );
    expect(await verifyFolder(rowsSwapped, 'acme')).toMatchObject({
      ok: false,
      firstBrokenPosition: String(first.position),
    });
    // Only the contents change places, the revisions stay in order: the links break.
    const contentsSwapped = tamperedCopy(dataDir, (db) => {
      swap(db, ['event_id', 'type', 'data', 'metadata']);
      db.prepare('UPDATE events SET revision = -1 - revision WHERE position IN (?, ?)').run(
        first.position,
        second.position,
      );
    });
    expect(await verifyFolder(contentsSwapped, 'acme')).toMatchObject({
      ok: false,
      firstBrokenPosition: String(first.position),
      reason: expect.stringMatching(/^chain-link: /),
    });
  });
});

describe('A history that began before hash chains', () => {
  it('verifies as unchained before the first chained position, never as broken', async () => {
    const clock = new TestClock();
    const dataDir = tempDir('mfa-legacy-');
    dirs.push(dataDir);
    let service = await startService({ dataDir, clock });
    await activeFirm(service.api, 'legacy', 5);
    await registerUser(service.api, 'legacy', 'ann');
    await enrollTotp(service.api, 'legacy', 'ann', clock.now());
    await settled(service);
    await service.stop();
    // What an older version wrote: the same events, without chain fields.
    const db = new Database(join(dataDir, 'events.sqlite'));
    const stripped = db
      .prepare(`UPDATE events SET metadata = json_remove(metadata, '$.hash', '$.previousHash')`)
      .run().changes;
    db.close();
    const old = await firmLog(dataDir, 'legacy');
    expect(old.length).toBe(stripped);
    expect(old.every((event) => chainLinkOf(event.metadata) === undefined)).toBe(true);

    // This version carries on the same streams: their chains start where the old events end.
    service = await startService({ dataDir, clock });
    expectOk(
      await service.api.post(`${mfaPath('legacy', 'ann')}/reset`, superuserOf('legacy'), {
        reason: 'Lost phone',
      }),
    );
    await registerUser(service.api, 'legacy', 'bob');
    await settled(service);
    const head = (await service.events()).at(-1)!.position;
    clock.advance(61_000);
    await anchorAfter(service, 'legacy', head);
    await settled(service);
    await service.stop();
    const events = await firmLog(dataDir, 'legacy');
    const firstChained = events.find((event) => chainLinkOf(event.metadata) !== undefined)!;
    expect(firstChained.position).toBe(old.at(-1)!.position + 1n);
    expect(await verifyFolder(dataDir, 'legacy')).toEqual({
      ok: true,
      eventsChecked: events.length,
      unchainedBefore: String(firstChained.position),
    });
  });
});
