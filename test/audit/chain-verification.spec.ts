import { randomUUID } from 'node:crypto';
import {
  BREAK_CODES,
  FirmChainVerifier,
  verifyFirmChains,
} from '../../src/audit/chain-verification';
import type { JsonObject, RecordedEvent } from '../../src/event-store/event-store.port';
import { eventHash, redactKeyMaterial } from '../../src/shared/event-hash';
import { streams } from '../../src/shared/ids';

/*
 * The verification fold (ADR 0017) on histories built here, event by event:
 * an intact one verifies, and each kind of tampering is named at the first
 * position where it shows. The tamper spec does the same on a real data folder.
 */

/** A firm's log in the making: chained as the service appends, or unchained as before chains. */
class History {
  readonly events: RecordedEvent[] = [];
  private readonly heads = new Map<string, { revision: bigint; hash: string | null }>();
  private position = 100n;

  append(
    streamId: string,
    type = 'Something',
    data: JsonObject = {},
    { chained = true, firmId = 'acme' } = {},
  ): RecordedEvent {
    const head = this.heads.get(streamId);
    const revision = head ? head.revision + 1n : 0n;
    const id = randomUUID();
    const metadata = {
      eventId: id,
      firmId,
      actor: { id: 'tester', role: 'host' as const },
      correlationId: id,
      causationId: id,
      commandId: id,
      occurredAt: '2026-01-15T09:00:00.000Z',
      schemaVersion: 1,
    };
    // Positions of a real log have gaps: other firms' events sit in between.
    this.position += 3n;
    const event: RecordedEvent = {
      streamId,
      revision,
      type,
      data,
      metadata,
      position: this.position,
    };
    if (chained) {
      const previousHash = head?.hash ?? null;
      const hash = eventHash(event, previousHash);
      event.metadata = { ...metadata, hash, previousHash } as RecordedEvent['metadata'];
      this.heads.set(streamId, { revision, hash });
    } else {
      this.heads.set(streamId, { revision, hash: null });
    }
    this.events.push(event);
    return event;
  }

  /** An anchor of the named streams' heads, as the anchor writer appends it. */
  anchor(firmId: string, ...streamIds: string[]): RecordedEvent {
    const heads = streamIds.map((streamId) => {
      const head = this.heads.get(streamId)!;
      return { streamId, revision: String(head.revision), hash: head.hash! };
    });
    return this.append(
      streams.audit(firmId),
      'StreamHeadsAnchored',
      { heads, through: String(this.position), anchoredAt: '2026-01-15T09:01:00.000Z' },
      { firmId },
    );
  }
}

const user = (id: string) => streams.user('acme', id);
const subscription = streams.subscription('acme');

/** A history of three streams, anchored once. */
function sample(): History {
  const history = new History();
  history.append(subscription, 'SubscriptionRequested', { plan: 'standard' });
  history.append(subscription, 'SubscriptionActivated', { licenseCount: 5 });
  history.append(user('ann'), 'UserRegistered', { name: 'Ann' });
  history.append(user('bob'), 'UserRegistered', { name: 'Bob' });
  history.append(user('ann'), 'FactorConfirmed', { factorId: 'f1' });
  history.append(subscription, 'SeatAssigned', { userId: 'ann' });
  history.anchor('acme', subscription, user('ann'), user('bob'));
  history.append(user('bob'), 'UserDeactivated', { reason: 'left' });
  history.append(user('ann'), 'EnrollmentReset', { reason: 'lost phone' });
  return history;
}

const verify = (events: RecordedEvent[], firmId = 'acme') => verifyFirmChains(events, firmId);
const positionOf = (event: RecordedEvent) => String(event.position);
const codeOf = (reason: string | undefined) => reason?.split(':')[0];

describe('Verifying a firm’s hash chains', () => {
  it('passes an intact history, counting every event', async () => {
    const { events } = sample();
    expect(await verify(events)).toEqual({ ok: true, eventsChecked: events.length });
  });

  it('passes an empty history', async () => {
    expect(await verify([])).toEqual({ ok: true, eventsChecked: 0 });
  });

  it('reads an async iterable as it comes, and stops at the first break', async () => {
    const { events } = sample();
    events[2] = { ...events[2], data: { name: 'Mallory' } };
    let read = 0;
    async function* slowly() {
      for (const event of events) {
        read++;
        await Promise.resolve();
        yield event;
      }
    }
    const result = await verifyFirmChains(slowly(), 'acme');
    expect(result).toMatchObject({ ok: false, firstBrokenPosition: positionOf(events[2]) });
    expect(read).toBe(3);
    expect(result.eventsChecked).toBe(3);
  });

  it('names an edited event', async () => {
    const { events } = sample();
    const edited = events[4];
    events[4] = { ...edited, data: { factorId: 'f2' } };
    const result = await verify(events);
    expect(result).toMatchObject({ ok: false, firstBrokenPosition: positionOf(edited) });
    expect(codeOf(result.reason)).toBe('edited');
    expect(result.reason).toContain(edited.streamId);
  });

  it('names key material replaced by its digest, which the hash alone cannot see, but not in an export', async () => {
    const history = new History();
    history.append(user('ann'), 'UserRegistered', { name: 'Ann' });
    const sealed = { keyId: 'k-1', iv: 'aa', ciphertext: 'bb', tag: 'cc' };
    const started = history.append(user('ann'), 'TotpEnrollmentStarted', {
      enrollmentId: 'en-1',
      secret: sealed,
    });
    history.append(user('ann'), 'FactorConfirmed', { factorId: 'f1' });
    const events = [...history.events];
    events[1] = { ...started, data: redactKeyMaterial(started.type, started.data) };
    // The digest hashes as the material does (so that exports verify)...
    expect(eventHash(events[1], null)).toBe(eventHash({ ...started }, null));
    // ...but a stored event must hold the material itself.
    expect(await verify(events)).toMatchObject({
      ok: false,
      firstBrokenPosition: positionOf(started),
      reason: expect.stringMatching(/^key-material-removed: /),
    });
    expect(await verifyFirmChains(events, 'acme', { exported: true })).toEqual({
      ok: true,
      eventsChecked: 3,
    });
    expect(await verify(history.events)).toMatchObject({ ok: true });
  });

  it('names an edit of the metadata too (who, when), and of the type', async () => {
    const { events } = sample();
    const original = events[3];
    events[3] = {
      ...original,
      metadata: { ...original.metadata, actor: { id: 'someone-else', role: 'host' } },
    };
    expect(await verify(events)).toMatchObject({
      ok: false,
      firstBrokenPosition: positionOf(original),
      reason: expect.stringMatching(/^edited: /),
    });
    const again = sample().events;
    again[1] = { ...again[1], type: 'SubscriptionCancelled' };
    expect(codeOf((await verify(again)).reason)).toBe('edited');
  });

  it('names the event after one removed in the middle of its stream', async () => {
    const { events } = sample();
    // Ann's registration (revision 0 of her stream) goes; her next event shows it.
    const next = events[4];
    events.splice(2, 1);
    const result = await verify(events);
    expect(result).toMatchObject({ ok: false, firstBrokenPosition: positionOf(next) });
    expect(codeOf(result.reason)).toBe('revision-gap');
  });

  it('names an inserted event, even one hashed and linked as our code would', async () => {
    const { events } = sample();
    const registered = events[2];
    const confirmed = events[4];
    // Slipped in after Ann's registration, linked to it, with the later revisions renumbered.
    const forged: RecordedEvent = {
      ...registered,
      revision: 1n,
      type: 'FactorConfirmed',
      data: { factorId: 'evil' },
      position: registered.position + 1n,
    };
    const previousHash = (registered.metadata as any).hash as string;
    forged.metadata = { ...registered.metadata, eventId: randomUUID() };
    forged.metadata = {
      ...forged.metadata,
      hash: eventHash(forged, previousHash),
      previousHash,
    } as RecordedEvent['metadata'];
    const tampered = events.map((event) =>
      event.streamId === user('ann') && event.revision > 0n
        ? { ...event, revision: event.revision + 1n }
        : event,
    );
    tampered.splice(3, 0, forged);
    const result = await verify(tampered);
    expect(result).toMatchObject({ ok: false, firstBrokenPosition: positionOf(confirmed) });
    expect(codeOf(result.reason)).toBe('chain-link');
    // Not renumbered: the stream's revisions collide at once.
    const colliding = [...events];
    colliding.splice(3, 0, forged);
    expect(await verify(colliding)).toMatchObject({
      ok: false,
      firstBrokenPosition: positionOf(confirmed),
      reason: expect.stringMatching(/^revision-order: /),
    });
  });

  it('names the first of two events of a stream swapped in the log', async () => {
    const { events } = sample();
    // Ann's two first events change places (each keeps its row: content and revision move).
    const [registered, confirmed] = [events[2], events[4]];
    events[2] = { ...confirmed, position: registered.position };
    events[4] = { ...registered, position: confirmed.position };
    const result = await verify(events);
    expect(result).toMatchObject({ ok: false, firstBrokenPosition: positionOf(registered) });
    expect(codeOf(result.reason)).toBe('revision-gap');
    // Contents swapped, revisions left where they were: the hashes disagree.
    const again = sample().events;
    const [a, b] = [again[2], again[4]];
    again[2] = { ...b, position: a.position, revision: a.revision };
    again[4] = { ...a, position: b.position, revision: b.revision };
    expect(await verify(again)).toMatchObject({ ok: false, firstBrokenPosition: positionOf(a) });
  });

  it('names a stream whose revisions go back in log order', async () => {
    const { events } = sample();
    const duplicate = { ...events[2], position: events[events.length - 1].position + 5n };
    const result = await verify([...events, duplicate]);
    expect(result).toMatchObject({ ok: false, firstBrokenPosition: positionOf(duplicate) });
    expect(codeOf(result.reason)).toBe('revision-order');
  });

  it('names the anchor when a stream lost its last events, up to the anchor', async () => {
    const { events } = sample();
    const anchor = events[6];
    // The seat assignment was the subscription's head when anchored; it goes.
    events.splice(5, 1);
    const result = await verify(events);
    expect(result).toMatchObject({ ok: false, firstBrokenPosition: positionOf(anchor) });
    expect(codeOf(result.reason)).toBe('stream-truncated');
    expect(result.reason).toContain(subscription);
  });

  it('names the anchor when a whole stream it names is gone', async () => {
    const { events } = sample();
    const anchor = events[6];
    const withoutBob = events.filter((event) => event.streamId !== user('bob'));
    expect(await verify(withoutBob)).toMatchObject({
      ok: false,
      firstBrokenPosition: positionOf(anchor),
      reason: expect.stringMatching(/^stream-truncated: /),
    });
  });

  it('does not see a removal at a stream’s end after the last anchor (the window ADR 0017 names)', async () => {
    const { events } = sample();
    events.pop();
    expect(await verify(events)).toEqual({ ok: true, eventsChecked: events.length });
  });

  it('names a stream rewritten with consistent hashes, against an anchor written before', async () => {
    const history = new History();
    history.append(user('ann'), 'UserRegistered', { name: 'Ann' });
    history.append(user('ann'), 'FactorConfirmed', { factorId: 'f1' });
    const anchor = history.anchor('acme', user('ann'));
    // The attacker rebuilds Ann's stream from scratch with our (unkeyed) hash.
    const rewritten = new History();
    const forged = [
      rewritten.append(user('ann'), 'UserRegistered', { name: 'Ann' }),
      rewritten.append(user('ann'), 'FactorConfirmed', { factorId: 'attacker' }),
    ].map((event, index) => ({ ...event, position: history.events[index].position }));
    const result = await verify([...forged, anchor]);
    expect(result).toMatchObject({ ok: false, firstBrokenPosition: positionOf(anchor) });
    expect(codeOf(result.reason)).toBe('anchor-mismatch');
  });

  it('checks an anchor naming a head its stream has moved past since, in the recent window', async () => {
    const history = new History();
    history.append(user('ann'), 'UserRegistered', { name: 'Ann' });
    const named = history.append(user('ann'), 'FactorConfirmed', { factorId: 'f1' });
    const anchorHeads = [
      { streamId: user('ann'), revision: '1', hash: (named.metadata as any).hash as string },
    ];
    // A command committed between the anchor's read of the heads and its append.
    history.append(user('ann'), 'EnrollmentReset', {});
    const good = history.append(streams.audit('acme'), 'StreamHeadsAnchored', {
      heads: anchorHeads,
      through: '0',
      anchoredAt: 'x',
    });
    expect(await verify(history.events)).toMatchObject({ ok: true });
    const bad = new History();
    bad.append(user('ann'), 'UserRegistered', { name: 'Ann' });
    bad.append(user('ann'), 'FactorConfirmed', { factorId: 'f1' });
    bad.append(user('ann'), 'EnrollmentReset', {});
    const wrong = bad.append(streams.audit('acme'), 'StreamHeadsAnchored', {
      heads: [{ ...anchorHeads[0], hash: 'a'.repeat(64) }],
      through: '0',
      anchoredAt: 'x',
    });
    expect(await verify(bad.events)).toMatchObject({
      ok: false,
      firstBrokenPosition: positionOf(wrong),
      reason: expect.stringMatching(/^anchor-mismatch: /),
    });
    // Beyond the window only the revision can be checked (memory stays bounded).
    expect(await verifyFirmChains(bad.events, 'acme', { recentHashes: 0 })).toMatchObject({
      ok: true,
    });
    expect(good.type).toBe('StreamHeadsAnchored');
  });

  it('names an anchor it cannot read', async () => {
    const history = new History();
    history.append(user('ann'));
    const anchor = history.append(streams.audit('acme'), 'StreamHeadsAnchored', {
      heads: [{ streamId: user('ann'), revision: 'zero', hash: 'nope' }],
    });
    expect(await verify(history.events)).toMatchObject({
      ok: false,
      firstBrokenPosition: positionOf(anchor),
      reason: expect.stringMatching(/^anchor-malformed: /),
    });
  });

  describe('history written before chains', () => {
    it('verifies as unchained before the firm’s first chained position, never as broken', async () => {
      const history = new History();
      history.append(subscription, 'SubscriptionRequested', {}, { chained: false });
      history.append(user('ann'), 'UserRegistered', {}, { chained: false });
      history.append(user('ann'), 'FactorConfirmed', {}, { chained: false });
      // The new version: chains start, a stream's first chained event links to nothing.
      const first = history.append(user('ann'), 'EnrollmentReset', {});
      history.append(subscription, 'SubscriptionActivated', {});
      history.append(user('bob'), 'UserRegistered', {});
      history.anchor('acme', user('ann'), subscription, user('bob'));
      expect(await verify(history.events)).toEqual({
        ok: true,
        eventsChecked: 7,
        unchainedBefore: positionOf(first),
      });
    });

    it('says when nothing is chained yet', async () => {
      const history = new History();
      history.append(user('ann'), 'UserRegistered', {}, { chained: false });
      const last = history.append(user('ann'), 'FactorConfirmed', {}, { chained: false });
      expect(await verify(history.events)).toEqual({
        ok: true,
        eventsChecked: 2,
        unchainedBefore: String(last.position + 1n),
      });
    });

    it('names an unchained event once chaining began (an old version still writing, or chains stripped)', async () => {
      const history = new History();
      history.append(user('ann'), 'UserRegistered', {});
      const stripped = history.append(user('bob'), 'UserRegistered', {}, { chained: false });
      const result = await verify(history.events);
      expect(result).toMatchObject({ ok: false, firstBrokenPosition: positionOf(stripped) });
      expect(codeOf(result.reason)).toBe('unchained-event');
    });
  });

  it('names an event of another firm, look-alike ids included', async () => {
    const history = new History();
    history.append(user('ann'));
    const foreign = history.append(
      streams.user('acme-2', 'ann'),
      'UserRegistered',
      {},
      {
        firmId: 'acme-2',
      },
    );
    expect(await verify(history.events)).toMatchObject({
      ok: false,
      firstBrokenPosition: positionOf(foreign),
      reason: expect.stringMatching(/^foreign-event: /),
    });
    // The same history is acme-2's view broken at acme's event.
    expect(await verify(history.events, 'acme-2')).toMatchObject({
      ok: false,
      firstBrokenPosition: positionOf(history.events[0]),
    });
  });

  it('names malformed chain fields, an unreadable event, and events out of log order', async () => {
    const malformed = sample().events;
    malformed[1] = { ...malformed[1], metadata: { ...malformed[1].metadata, hash: 'x' } as any };
    expect(codeOf((await verify(malformed)).reason)).toBe('malformed-chain');
    const unreadable = sample().events;
    unreadable[1] = { ...unreadable[1], data: {}, corrupt: 'data is not valid JSON' };
    expect(codeOf((await verify(unreadable)).reason)).toBe('unreadable-event');
    const disordered = sample().events;
    [disordered[3], disordered[4]] = [disordered[4], disordered[3]];
    expect(await verify(disordered)).toMatchObject({
      ok: false,
      firstBrokenPosition: positionOf(disordered[4]),
      reason: expect.stringMatching(/^log-order: /),
    });
  });

  it('answers with stable codes only, and keeps only the first break', () => {
    const { events } = sample();
    events[1] = { ...events[1], data: { plan: 'edited' } };
    events[3] = { ...events[3], data: { name: 'edited' } };
    const verifier = new FirmChainVerifier('acme');
    const answers = events.map((event) => verifier.push(event));
    expect(answers).toEqual([true, false, ...events.slice(2).map(() => false)]);
    const result = verifier.result();
    expect(result.firstBrokenPosition).toBe(positionOf(events[1]));
    expect(result.eventsChecked).toBe(2);
    expect(BREAK_CODES).toContain(codeOf(result.reason));
  });
});
