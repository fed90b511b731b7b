import Database from 'better-sqlite3';
import { execFileSync } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ExportFilters, NO_FILTERS } from '../../src/audit/audit-query';
import { exportFirm } from '../../src/audit/firm-export';
import { verifyExport, verifyExportFile } from '../../src/audit/offline-verification';
import type { EventStore, NewEvent } from '../../src/event-store/event-store.port';
import { SqliteEventStore } from '../../src/event-store/sqlite-event-store';
import { tempDir } from '../support/harness';
import { newEvent } from '../support/log-events';
import { appendChained } from './audit-fixtures';

/*
 * `npm run audit -- verify --file` (docs/audit.md): a saved export is checked
 * with nothing but the file. An untouched export verifies; one byte changed
 * anywhere, a line removed, inserted or moved, does not, and the answer names
 * the first broken position where a line can be named.
 */

const at = (hour: number) => `2026-01-15T${String(hour).padStart(2, '0')}:00:00.000Z`;
const happened = (event: NewEvent, hour: number): NewEvent => ({
  ...event,
  metadata: { ...event.metadata, occurredAt: at(hour) },
});

/** A small history of firm acme (and of acme-2 beside it), chained as ADR 0017 appends. */
async function history(store: EventStore): Promise<void> {
  await appendChained(store, 'subscription-acme', [
    happened(newEvent('acme', 'SubscriptionRequested', { plan: 'p', requestedAt: at(9) }), 9),
  ]);
  await appendChained(store, 'user-acme/ann', [
    happened(newEvent('acme', 'UserRegistered', { userId: 'ann', name: 'Ann Lee' }), 10),
  ]);
  await appendChained(store, 'user-acme-2/ann', [
    happened(newEvent('acme-2', 'UserRegistered', { userId: 'ann', name: 'Ann Other' }), 10),
  ]);
  await appendChained(store, 'subscription-acme', [
    happened(newEvent('acme', 'SubscriptionActivated', { plan: 'p', licenseCount: 5 }), 10),
  ]);
  await appendChained(store, 'user-acme/ann', [
    happened(
      newEvent('acme', 'TotpEnrollmentStarted', {
        userId: 'ann',
        enrollmentId: 'e-1',
        secret: { keyId: 'k-ann', iv: 'aXYtYW5u', ciphertext: 'c2VhbGVkLXNlY3JldA', tag: 'dGFn' },
      }),
      11,
    ),
    happened(newEvent('acme', 'FactorConfirmed', { userId: 'ann', factorId: 'f-1' }), 11),
  ]);
  await appendChained(store, 'user-acme/bob', [
    happened(newEvent('acme', 'UserRegistered', { userId: 'bob', name: 'Bob Roe' }), 12),
    happened(
      newEvent('acme', 'FactorConfirmed', {
        userId: 'bob',
        factorId: 'f-2',
        credential: { credentialId: 'cred-bob', publicKey: 'pQECAyYgASFYIA' },
      }),
      12,
    ),
  ]);
  await appendChained(store, 'user-acme/ann', [
    happened(newEvent('acme', 'EnrollmentReset', { userId: 'ann', factorIds: ['f-1'] }), 13),
  ]);
}

describe('offline verification of a saved export', () => {
  let dir: string;
  let store: SqliteEventStore;
  let file: string;

  beforeEach(async () => {
    dir = tempDir('mfa-verify-');
    store = new SqliteEventStore(join(dir, 'events.sqlite'));
    file = join(dir, 'export.ndjson');
  });
  afterEach(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function saveExport(filters: ExportFilters = NO_FILTERS, firmId = 'acme'): Promise<string> {
    let text = '';
    for await (const chunk of exportFirm(store, firmId, {
      filters,
      exportedAt: '2026-01-16T08:00:00.000Z',
    })) {
      text += chunk.toString();
    }
    writeFileSync(file, text);
    return text;
  }

  const verifyText = (text: string | Buffer) => verifyExport(Buffer.from(text));
  const linesOf = (text: string) => text.split('\n').slice(0, -1);
  const positionOf = (line: string) => (JSON.parse(line) as { position: string }).position;

  it('an untouched export verifies, filtered or not', async () => {
    await history(store);
    const text = await saveExport();
    expect(linesOf(text)).toHaveLength(9);
    expect(await verifyExportFile(file)).toEqual({ ok: true, eventsChecked: 8 });
    const filtered: Array<[Partial<ExportFilters>, number]> = [
      [{ types: ['FactorConfirmed'] }, 2],
      [{ userId: 'ann' }, 4],
      [{ from: at(11), to: at(13) }, 4],
      [{ types: ['EnrollmentReset', 'UserRegistered'], from: at(10) }, 3],
    ];
    for (const [filters, count] of filtered) {
      await saveExport({ ...NO_FILTERS, ...filters });
      expect({ filters, result: await verifyExportFile(file) }).toEqual({
        filters,
        result: { ok: true, eventsChecked: count },
      });
    }
    await saveExport(NO_FILTERS, 'nobody');
    expect(await verifyExportFile(file)).toEqual({ ok: true, eventsChecked: 0 });
  });

  it.each([
    ['chained', true],
    ['unchained (written before the chain)', false],
  ])(
    'fails for every byte of a %s export changed, whichever byte it is',
    async (_name, chained) => {
      if (chained) await history(store);
      else {
        await store.appendToStream(
          'user-acme/ann',
          [
            happened(newEvent('acme', 'UserRegistered', { userId: 'ann', name: 'Ann' }), 10),
            happened(newEvent('acme', 'FactorConfirmed', { userId: 'ann', n: 12 }), 11),
          ],
          'no_stream',
        );
        await store.appendToStream(
          'subscription-acme',
          [happened(newEvent('acme', 'SubscriptionRequested', { plan: 'p' }), 9)],
          'no_stream',
        );
      }
      const original = Buffer.from(await saveExport());
      expect((await verifyExportFile(file)).ok).toBe(true);
      const passed: string[] = [];
      for (let index = 0; index < original.length; index++) {
        for (const flip of [0x01, 0x20]) {
          const changed = Buffer.from(original);
          changed[index] ^= flip;
          const result = await verifyExport(changed);
          if (result.ok) passed.push(`byte ${index} ^ ${flip}`);
        }
      }
      expect(passed).toEqual([]);
    },
  );

  it('names the line whose content no longer gives its hash', async () => {
    await history(store);
    const lines = linesOf(await saveExport());
    const index = lines.findIndex((line) => line.includes('Bob Roe'));
    lines[index] = lines[index].replace('Bob Roe', 'Bob Rox');
    expect(await verifyText(`${lines.join('\n')}\n`)).toEqual({
      ok: false,
      eventsChecked: 8,
      firstBrokenPosition: positionOf(lines[index]),
      reason: `line ${index + 1}: its content does not give its hash`,
    });
  });

  it('finds a removed line: in the middle of a stream, at the end of one, and the trailer', async () => {
    await history(store);
    const lines = linesOf(await saveExport());
    const ann = lines
      .map((line, index) => ({ line, index }))
      .filter(({ line }) => line.includes('"streamId":"user-acme/ann"'));
    // The middle one of ann's stream: her next event names what is missing.
    const middle = ann[1].index;
    const without = lines.filter((_, index) => index !== middle);
    expect(await verifyText(`${without.join('\n')}\n`)).toMatchObject({
      ok: false,
      firstBrokenPosition: positionOf(lines[ann[2].index]),
      reason: expect.stringMatching(/missing/),
    });
    // A stream's last event: the trailer's count, digest and heads no longer agree.
    const last = ann[ann.length - 1].index;
    expect(
      await verifyText(`${lines.filter((_, index) => index !== last).join('\n')}\n`),
    ).toMatchObject({ ok: false, reason: expect.stringMatching(/trailer/) });
    // The trailer: cut short.
    expect(await verifyText(`${lines.slice(0, -1).join('\n')}\n`)).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/no trailer/),
    });
    // Cut in the middle of a line.
    const text = `${lines.join('\n')}\n`;
    expect(await verifyText(text.slice(0, text.length - 200))).toMatchObject({ ok: false });
  });

  it('finds two lines swapped, a line inserted twice, and lines after the trailer', async () => {
    await history(store);
    const lines = linesOf(await saveExport());
    const swapped = [...lines];
    [swapped[2], swapped[3]] = [swapped[3], swapped[2]];
    expect(await verifyText(`${swapped.join('\n')}\n`)).toMatchObject({
      ok: false,
      firstBrokenPosition: positionOf(lines[2]),
      reason: expect.stringMatching(/out of log order/),
    });
    const twice = [...lines.slice(0, 4), lines[3], ...lines.slice(4)];
    expect(await verifyText(`${twice.join('\n')}\n`)).toMatchObject({
      ok: false,
      firstBrokenPosition: positionOf(lines[3]),
    });
    const after = [...lines, lines[0]];
    expect(await verifyText(`${after.join('\n')}\n`)).toMatchObject({ ok: false });
    // Line endings are part of the file: CRLF is not the export.
    expect(await verifyText(`${lines.join('\r\n')}\r\n`)).toMatchObject({ ok: false });
  });

  it('an export of a history that lost an event fails at the next event of that stream', async () => {
    await history(store);
    const [gone] = (await store.readStream('user-acme/ann')).slice(1, 2);
    const db = new Database(join(dir, 'events.sqlite'));
    db.prepare('DELETE FROM events WHERE position = ?').run(gone.position);
    db.close();
    await saveExport();
    const [next] = await store.readStream('user-acme/ann', { fromRevision: 2n, maxCount: 1 });
    expect(await verifyExportFile(file)).toMatchObject({
      ok: false,
      firstBrokenPosition: next.position.toString(),
    });
  });

  it('an event the store could not read is in the export, counted, and fails verification there', async () => {
    await history(store);
    const db = new Database(join(dir, 'events.sqlite'));
    db.prepare(
      'INSERT INTO events (event_id, stream_id, revision, type, data, metadata) VALUES (?, ?, ?, ?, ?, ?)',
    ).run(
      'raw-1',
      'user-acme/bob',
      2,
      'UserDeactivated',
      '{"userId": "bob", ',
      '{"firmId": "acme"}',
    );
    db.close();
    const lines = linesOf(await saveExport());
    const corrupt = JSON.parse(lines[lines.length - 2]);
    expect(corrupt).toEqual({
      position: expect.any(String),
      streamId: 'user-acme/bob',
      revision: '2',
      type: 'UserDeactivated',
      corrupt: 'data is not valid JSON',
    });
    expect(JSON.parse(lines[lines.length - 1]).trailer).toMatchObject({ events: 9, corrupt: 1 });
    expect(await verifyExportFile(file)).toMatchObject({
      ok: false,
      eventsChecked: 9,
      firstBrokenPosition: corrupt.position,
      reason: expect.stringMatching(/could not read/),
    });
  });

  it('reads a file whose lines and trailer span many reads (a trailer of thousands of heads)', async () => {
    await Promise.all(
      Array.from({ length: 3000 }, (_, i) =>
        store.appendToStream(
          `user-acme/u${i}`,
          [newEvent('acme', 'UserRegistered', { userId: `u${i}`, name: 'x'.repeat(i % 700) })],
          'no_stream',
        ),
      ),
    );
    const text = await saveExport();
    expect(linesOf(text).pop()!.length).toBeGreaterThan(300_000);
    expect(text.length).toBeGreaterThan(2 << 20);
    expect(await verifyExportFile(file)).toEqual({ ok: true, eventsChecked: 3000 });
    const changed = text.replace('"u2999"', '"u2998"');
    writeFileSync(file, changed);
    expect((await verifyExportFile(file)).ok).toBe(false);
  });

  it('an event stored by hand, not as the service writes JSON, is exported as stored and named', async () => {
    await history(store);
    const db = new Database(join(dir, 'events.sqlite'));
    const metadata = JSON.stringify(newEvent('acme', 'UserDeactivated', {}).metadata);
    const { lastInsertRowid } = db
      .prepare(
        'INSERT INTO events (event_id, stream_id, revision, type, data, metadata) VALUES (?, ?, ?, ?, ?, ?)',
      )
      .run('by-hand', 'user-acme/bob', 2, 'UserDeactivated', '{ "userId": "bob" }', metadata);
    db.close();
    const lines = linesOf(await saveExport());
    expect(lines[lines.length - 2]).toContain('"data":{ "userId": "bob" }');
    expect(await verifyExportFile(file)).toMatchObject({
      ok: false,
      firstBrokenPosition: String(lastInsertRowid),
      reason: expect.stringMatching(/not in the form the export writes.*stored by hand/),
    });
    // Pretty-printed, over several lines: serialized again, so that it stays one line.
    const db2 = new Database(join(dir, 'events.sqlite'));
    db2
      .prepare('UPDATE events SET metadata = ? WHERE event_id = ?')
      .run(JSON.stringify(JSON.parse(metadata), null, 2), 'by-hand');
    db2.close();
    const again = linesOf(await saveExport());
    expect(again).toHaveLength(lines.length);
    expect(JSON.parse(again[again.length - 2]).data).toEqual({ userId: 'bob' });
    // In the export's form now; still an event without a hash after chained ones.
    expect(await verifyExportFile(file)).toMatchObject({
      ok: false,
      firstBrokenPosition: String(lastInsertRowid),
      reason: expect.stringMatching(/no hash, after chained events/),
    });
  });

  it("the guide's Python recomputes the trailer's digest with nothing of ours", async () => {
    await history(store);
    const db = new Database(join(dir, 'events.sqlite'));
    db.prepare(
      'INSERT INTO events (event_id, stream_id, revision, type, data, metadata) VALUES (?, ?, ?, ?, ?, ?)',
    ).run('raw-1', 'user-acme/bob', 2, 'UserDeactivated', 'not json', '{"firmId": "acme"}');
    db.close();
    await saveExport();
    const guide = readFileSync(join(__dirname, '..', '..', 'docs', 'audit.md'), 'utf8');
    const script = /```python\n([\s\S]*?)```/.exec(guide)![1].replace('acme.ndjson', file);
    const run = (text: string) =>
      execFileSync('python3', ['-c', script], { input: text, encoding: 'utf8' }).trim();
    expect(run('')).toBe('True');
    // The same script on a file changed by one byte: False.
    writeFileSync(file, readFileSync(file, 'utf8').replace('"Ann Lee"', '"Ann Lea"'));
    expect(run('')).toBe('False');
  });

  it('a saved export holds no key material, and its digests still verify', async () => {
    await history(store);
    const text = await saveExport();
    for (const secret of ['c2VhbGVkLXNlY3JldA', 'aXYtYW5u', 'dGFn', 'pQECAyYgASFYIA']) {
      expect(text).not.toContain(secret);
    }
    expect(readFileSync(file, 'utf8')).toContain('"redacted":"sha256:');
    expect((await verifyExportFile(file)).ok).toBe(true);
  });
});
