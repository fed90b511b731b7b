import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { NO_FILTERS } from '../../src/audit/audit-query';
import { exportFirm, EXPORT_PAGE_SIZE } from '../../src/audit/firm-export';
import { EVENT_STORE, EventStore, NewEvent } from '../../src/event-store/event-store.port';
import { SqliteEventStore } from '../../src/event-store/sqlite-event-store';
import { RunningService, startService, tempDir, token } from '../support/harness';
import { newEvent } from '../support/log-events';

/*
 * The export streams: a page is read only when the consumer wants the next
 * lines, so the first lines leave before the last events are read and memory
 * holds one page, whatever the history's length (the bench measures the
 * memory on a million events: bench/audit.bench.ts).
 */

/** `count` events of firm `firmId`, in streams of 100, appended in one group commit. */
async function appendMany(store: EventStore, firmId: string, count: number): Promise<void> {
  const appends: Array<Promise<unknown>> = [];
  for (let user = 0; user * 100 < count; user++) {
    const events: NewEvent[] = [];
    for (let i = user * 100; i < Math.min(count, (user + 1) * 100); i++) {
      // A type no read model follows: the service's projections pass over them quickly.
      events.push(newEvent(firmId, 'AuditBulkTestEvent', { userId: `u${user}`, n: i }));
    }
    appends.push(store.appendToStream(`verification-${firmId}/u${user}`, events, 'no_stream'));
  }
  await Promise.all(appends);
}

describe('audit export streaming', () => {
  it('reads a page only when the consumer asks for more lines', async () => {
    const dir = tempDir('mfa-export-');
    const store = new SqliteEventStore(join(dir, 'events.sqlite'));
    try {
      await appendMany(store, 'bulk', 500);
      await appendMany(store, 'other', 100);
      const readFirm = jest.spyOn(store, 'readFirm');
      const chunks = exportFirm(store, 'bulk', {
        filters: NO_FILTERS,
        exportedAt: '2026-01-15T09:00:00.000Z',
        pageSize: 100,
      });
      const first = await chunks.next();
      expect(readFirm).toHaveBeenCalledTimes(1);
      const firstLines = (first.value as Buffer).toString().split('\n').filter(Boolean);
      expect(firstLines).toHaveLength(100);
      expect(JSON.parse(firstLines[0])).toMatchObject({
        type: 'AuditBulkTestEvent',
        data: { n: 0 },
      });
      await chunks.next();
      expect(readFirm).toHaveBeenCalledTimes(2);
      let rest = '';
      for await (const chunk of chunks) rest += chunk.toString();
      const lines = rest.split('\n').filter(Boolean);
      expect(lines).toHaveLength(301);
      expect(JSON.parse(lines[lines.length - 1]).trailer).toMatchObject({ events: 500 });
      // Five pages of the firm's events; the export stops at the head read when it began.
      expect(readFirm.mock.calls.length).toBeLessThanOrEqual(6);
    } finally {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  describe('over HTTP', () => {
    let service: RunningService;
    beforeAll(async () => (service = await startService()));
    afterAll(() => service?.stop());

    it('sends the first lines of a long export before its last events are read, with back-pressure', async () => {
      const store = service.app.get<symbol, EventStore>(EVENT_STORE);
      // About 18 MB of NDJSON: several times what the socket buffers between server and
      // client hold (about ten pages were read when the first arrived, when measured).
      const total = 40_000;
      await appendMany(store, 'bulk', total);
      const readFirm = jest.spyOn(store, 'readFirm');
      const response = await fetch(`${service.api.baseUrl}/v1/audit/firms/bulk/events`, {
        headers: { authorization: `Bearer ${token('auditor', { firm: 'bulk' })}` },
      });
      expect(response.status).toBe(200);
      expect(response.headers.get('content-length')).toBeNull();
      const reader = response.body!.getReader();
      const first = await reader.read();
      expect(first.done).toBe(false);
      // Nobody reads the rest yet: the service has stopped reading pages long before the last.
      const pagesWhenFirstArrived = readFirm.mock.calls.length;
      expect(pagesWhenFirstArrived).toBeGreaterThanOrEqual(1);
      expect(pagesWhenFirstArrived).toBeLessThan(total / EXPORT_PAGE_SIZE);

      const decoder = new TextDecoder();
      let text = decoder.decode(first.value, { stream: true });
      for (let next = await reader.read(); !next.done; next = await reader.read()) {
        text += decoder.decode(next.value, { stream: true });
      }
      const lines = text.trimEnd().split('\n');
      const trailer = JSON.parse(lines.pop()!).trailer;
      // The firm's anchors (ADR 0017), written while the bulk was appended, are its events too.
      const events = lines.map((line) => JSON.parse(line));
      const bulk = events.filter((event) => event.type === 'AuditBulkTestEvent');
      for (const other of events.filter((event) => event.type !== 'AuditBulkTestEvent')) {
        expect(other).toMatchObject({ type: 'StreamHeadsAnchored', streamId: 'audit-bulk' });
      }
      expect(bulk).toHaveLength(total);
      expect(bulk[0]).toMatchObject({ data: { n: 0 } });
      expect(bulk[total - 1]).toMatchObject({ data: { n: total - 1 } });
      expect(trailer).toMatchObject({ events: events.length });
      expect(readFirm.mock.calls.length).toBeGreaterThanOrEqual(total / EXPORT_PAGE_SIZE);
      readFirm.mockRestore();
    });

    it('lets a client go away in the middle of an export, and serves on', async () => {
      const aborted = new AbortController();
      const response = await fetch(`${service.api.baseUrl}/v1/audit/firms/bulk/events`, {
        headers: { authorization: `Bearer ${token('auditor', { firm: 'bulk' })}` },
        signal: aborted.signal,
      });
      await response.body!.getReader().read();
      aborted.abort();
      // The next request is answered in full: the service is not stuck on the first one.
      const again = await fetch(`${service.api.baseUrl}/v1/audit/firms/bulk/events?userId=u0`, {
        headers: { authorization: `Bearer ${token('auditor', { firm: 'bulk' })}` },
      });
      const lines = (await again.text()).trimEnd().split('\n');
      expect(lines).toHaveLength(101);
      expect(JSON.parse(lines[100]).trailer).toMatchObject({ events: 100 });
    });
  });
});
