import Database from 'better-sqlite3';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { verifyFirmChains } from '../../src/audit/chain-verification';
import type { RecordedEvent } from '../../src/event-store/event-store.port';
import { chainLinkOf } from '../../src/shared/event-hash';
import { firmOfStream, streams } from '../../src/shared/ids';
import { RunningService, startService, tempDir, TestClock } from '../support/harness';
import { activeFirm, expectOk, host, registerUser } from '../support/mfa';
import { ANCHOR_WRITER, anchorAfter, settled } from './settle';

/*
 * ADR 0017: the anchor writer records, in each firm's `audit-{firmId}`
 * stream, the chain heads of the firm's streams that changed since its last
 * anchor: every AUDIT_ANCHOR_EVERY events of the firm, and at most
 * AUDIT_ANCHOR_SECONDS (by the injected clock) after an unanchored event. A
 * restart, or a checkpoint behind its effects, neither loses nor doubles one.
 */

const ANCHORS = ANCHOR_WRITER;

interface Anchor {
  event: RecordedEvent;
  heads: Array<{ streamId: string; revision: string; hash: string }>;
  through: bigint;
}

const anchorsOf = (events: RecordedEvent[], firmId: string): Anchor[] =>
  events
    .filter((e) => e.streamId === streams.audit(firmId))
    .map((event) => ({
      event,
      heads: event.data.heads as Anchor['heads'],
      through: BigInt(event.data.through as string),
    }));

/** The firm's events but its anchors, in log order. */
const changesOf = (events: RecordedEvent[], firmId: string) =>
  events.filter((e) => firmOfStream(e.streamId) === firmId && !e.streamId.startsWith('audit-'));

describe('Anchors of the firms’ hash chains', () => {
  describe('every AUDIT_ANCHOR_EVERY events of a firm', () => {
    let service: RunningService;
    beforeAll(async () => {
      service = await startService({ clock: new TestClock(), env: { AUDIT_ANCHOR_EVERY: '5' } });
    });
    afterAll(() => service.stop());

    it('name the heads of the firm’s changed streams, and nothing of look-alike firms', async () => {
      for (const firmId of ['acme', 'acme-2']) {
        await activeFirm(service.api, firmId, 10);
        for (const userId of ['ann', 'bob', 'cid', 'dee']) {
          await registerUser(service.api, firmId, userId);
        }
      }
      expectOk(
        await service.api.post(`/v1/firms/acme/users/bob/deactivate`, host, { reason: 'deleted' }),
      );
      await settled(service);
      const log = await service.events();
      for (const firmId of ['acme', 'acme-2']) {
        const changes = changesOf(log, firmId);
        const anchors = anchorsOf(log, firmId);
        expect(changes.length).toBeGreaterThanOrEqual(7);
        expect(anchors).toHaveLength(Math.floor(changes.length / 5));
        anchors.forEach((anchor, index) => {
          // Each anchor covers the firm's next five events.
          const covered = changes.slice(index * 5, index * 5 + 5);
          expect(anchor.through).toBe(covered[4].position);
          expect(anchor.heads.map((h) => h.streamId).sort()).toEqual(
            [...new Set(covered.map((e) => e.streamId))].sort(),
          );
          for (const head of anchor.heads) {
            expect(firmOfStream(head.streamId)).toBe(firmId);
            const named = log.find(
              (e) => e.streamId === head.streamId && String(e.revision) === head.revision,
            );
            expect(named).toBeDefined();
            expect(named!.position).toBeLessThan(anchor.event.position);
            expect(chainLinkOf(named!.metadata)?.hash).toBe(head.hash);
          }
          expect(anchor.event.metadata).toMatchObject({
            firmId,
            actor: { id: ANCHORS, role: 'system' },
          });
        });
        const firmEvents = log.filter((e) => firmOfStream(e.streamId) === firmId);
        expect(await verifyFirmChains(firmEvents, firmId)).toEqual({
          ok: true,
          eventsChecked: firmEvents.length,
        });
      }
    });
  });

  describe(`at most AUDIT_ANCHOR_SECONDS after an unanchored event`, () => {
    const clock = new TestClock();
    let service: RunningService;
    beforeAll(async () => (service = await startService({ clock })));
    afterAll(() => service.stop());

    it('are written once the clock has moved past it', async () => {
      await activeFirm(service.api, 'tempo', 3);
      await registerUser(service.api, 'tempo', 'ann');
      await settled(service);
      const before = await service.events();
      expect(anchorsOf(before, 'tempo')).toEqual([]);
      const head = before[before.length - 1].position;
      clock.advance(61_000);
      await anchorAfter(service, 'tempo', head);
      await settled(service);
      const log = await service.events();
      const [anchor, ...more] = anchorsOf(log, 'tempo');
      expect(more).toEqual([]);
      const changes = changesOf(log, 'tempo');
      expect(anchor.through).toBe(changes[changes.length - 1].position);
      expect(anchor.heads.map((h) => h.streamId).sort()).toEqual(
        [...new Set(changes.map((e) => e.streamId))].sort(),
      );
      expect(anchor.event.data.anchoredAt).toBe(clock.now().toISOString());
    });
  });

  describe('across a restart', () => {
    const dataDir = tempDir();
    afterAll(() => rmSync(dataDir, { recursive: true, force: true }));
    const env = { AUDIT_ANCHOR_EVERY: '4' };

    it('count the events not anchored before it, and never anchor the same ones twice', async () => {
      const clock = new TestClock();
      let service = await startService({ dataDir, clock, env });
      // Three events of the firm: not enough for an anchor.
      await activeFirm(service.api, 'restart', 3);
      await settled(service);
      expect(changesOf(await service.events(), 'restart')).toHaveLength(3);
      await service.stop();

      service = await startService({ dataDir, clock, env });
      await registerUser(service.api, 'restart', 'ann');
      await settled(service);
      let log = await service.events();
      const changes = changesOf(log, 'restart');
      const anchors = anchorsOf(log, 'restart');
      expect(anchors).toHaveLength(Math.floor(changes.length / 4));
      expect(anchors[0].through).toBe(changes[3].position);
      // The streams changed before the restart are named too.
      expect(anchors[0].heads.map((h) => h.streamId)).toEqual(
        expect.arrayContaining([streams.subscription('restart'), streams.enablement('restart')]),
      );
      await service.stop();

      // A checkpoint behind its effects (a crash between the anchor and the checkpoint).
      const db = new Database(join(dataDir, 'readmodels.sqlite'));
      const rewound = db
        .prepare(`UPDATE process_checkpoints SET position = '0' WHERE name = ?`)
        .run(ANCHORS);
      db.close();
      expect(rewound.changes).toBe(1);
      service = await startService({ dataDir, clock, env });
      await settled(service);
      log = await service.events();
      expect(anchorsOf(log, 'restart').map((a) => a.event.position)).toEqual(
        anchors.map((a) => a.event.position),
      );
      const firmEvents = log.filter((e) => firmOfStream(e.streamId) === 'restart');
      expect(await verifyFirmChains(firmEvents, 'restart')).toMatchObject({ ok: true });
      await service.stop();
    });
  });
});
