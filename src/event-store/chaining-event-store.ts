import { setTimeout as delay } from 'node:timers/promises';
import { backoffDelay } from '../shared/backoff';
import { ChainedContent, ChainedMetadata, chainLinkOf, eventHash } from '../shared/event-hash';
import {
  AppendResult,
  EventMetadata,
  EventStore,
  ExpectedRevision,
  FirmPage,
  LogPage,
  NewEvent,
  ReadAllOptions,
  ReadFirmOptions,
  ReadPageOptions,
  ReadStreamOptions,
  RecordedEvent,
  StoreSubscription,
  StreamAppend,
  SubscribeOptions,
  WrongExpectedRevisionError,
} from './event-store.port';

/**
 * Attempts for a part whose caller asked for `any` or `stream_exists`: the
 * chain needs the exact predecessor, so such a part is appended at the exact
 * revision read, and a writer of another process that got in between costs a
 * fresh read (this process's own such appends to a stream queue up). As many
 * as the command handler makes on a conflict.
 */
const RELAXED_ATTEMPTS = 16;

/** Where a part's chain continues from. */
interface Predecessor {
  /** Revision of the stream's last event before the part (-1n: none). */
  revision: bigint;
  /** Its hash; null when there is none or it is unchained (written before chains). */
  hash: string | null;
  /** What the append must be checked against, so that the predecessor is the one hashed. */
  expectedRevision: ExpectedRevision;
  /** The part's events are already stored from there (a retried batch sent with `any` or `stream_exists`). */
  retried?: boolean;
}

/**
 * Every appended event gets `metadata.hash` and `metadata.previousHash`: a
 * per-stream hash chain (ADR 0017, src/shared/event-hash.ts), computed before
 * the append, for an adapter that cannot link events inside its own write
 * (KurrentDB; SQLite links them in its write transaction, with `linkEvents`
 * below). The predecessor is read (the event at the expected revision: one
 * read per stream written, none for a new stream) and the append is checked
 * against exactly that revision, so the chain cannot fork: a writer that got
 * in first makes the adapter refuse, as it would without chains.
 *
 * - A caller's exact revision (or `no_stream`) is passed on unchanged. When
 *   the stream has moved past it the hashes computed here are wrong, but the
 *   adapter either refuses the append or recognises a retried batch (the same
 *   event ids) and answers the first result without writing: they are never
 *   stored. The adapter's `alreadyStored` is passed on.
 * - `any` and `stream_exists` become the revision read, and a refusal caused by
 *   a concurrent writer is retried here with a fresh read. A retried batch is
 *   first looked up by its command id (`readCommand`) and, when found, sent
 *   with the revision it was first appended at, so that both adapters' own
 *   retry detection (SQLite's by event ids, KurrentDB's by ids at an exact
 *   revision) answers the first result instead of appending it again, flagged
 *   `alreadyStored` here whatever the adapter can tell.
 * - Parts without events (multi-stream appends that only check a stream) are
 *   passed on as they are.
 * - Hashes are over the event as a reader will get it back: data that JSON
 *   cannot hold as such (NaN, Infinity: stored as null) is hashed and appended
 *   in its stored form.
 *
 * Reads, subscriptions and `readCommand` go straight to the adapter.
 */
export class ChainingEventStore implements EventStore {
  /** Appends with `any` or `stream_exists` in progress, by stream: the next one waits. */
  private readonly relaxedQueues = new Map<string, Promise<void>>();

  constructor(private readonly inner: EventStore) {}

  appendToStream(
    streamId: string,
    events: NewEvent[],
    expectedRevision: ExpectedRevision,
  ): Promise<AppendResult> {
    if (events.length === 0) return this.inner.appendToStream(streamId, events, expectedRevision);
    return this.appendChained([{ streamId, events, expectedRevision }], async ([part]) => [
      await this.inner.appendToStream(part.streamId, part.events, part.expectedRevision),
    ]).then(([result]) => result);
  }

  appendToStreams(appends: readonly StreamAppend[]): Promise<AppendResult[]> {
    if (!appends.some((part) => part.events.length > 0)) return this.inner.appendToStreams(appends);
    return this.appendChained(appends, (chained) => this.inner.appendToStreams(chained));
  }

  private appendChained(
    appends: readonly StreamAppend[],
    write: (chained: StreamAppend[]) => Promise<AppendResult[]>,
  ): Promise<AppendResult[]> {
    const relaxed = appends
      .filter((part) => part.events.length > 0 && isRelaxed(part.expectedRevision))
      .map((part) => part.streamId);
    const attempts = async (): Promise<AppendResult[]> => {
      for (let attempt = 1; ; attempt++) {
        const chained = await Promise.all(appends.map((part) => this.chained(part)));
        try {
          const results = await write(chained.map(({ part }) => part));
          // A part found already stored was a retried write, whatever the adapter can tell.
          return results.map((result, index) =>
            chained[index].retried ? { ...result, alreadyStored: true } : result,
          );
        } catch (error) {
          if (!(error instanceof WrongExpectedRevisionError)) throw error;
          const asked = appends.find((part) => part.streamId === error.streamId);
          if (!asked || !isRelaxed(asked.expectedRevision)) throw error;
          if (attempt >= RELAXED_ATTEMPTS) {
            // Said in the caller's terms: it never asked for an exact revision.
            throw new WrongExpectedRevisionError(
              error.streamId,
              asked.expectedRevision,
              error.actual,
            );
          }
          await delay(backoffDelay(attempt, { firstMs: 5, maxMs: 40, jitter: 'full' }));
        }
      }
    };
    return relaxed.length === 0 ? attempts() : this.queued(relaxed, attempts);
  }

  /**
   * Runs `work` after this process's earlier relaxed appends to the same
   * streams: they would otherwise all read the same head and all but one be
   * refused, again and again.
   */
  private async queued<T>(streamIds: readonly string[], work: () => Promise<T>): Promise<T> {
    const before = streamIds.map((id) => this.relaxedQueues.get(id) ?? Promise.resolve());
    const current = Promise.all(before).then(work);
    const settled = current.then(
      () => undefined,
      () => undefined,
    );
    for (const id of streamIds) this.relaxedQueues.set(id, settled);
    try {
      return await current;
    } finally {
      for (const id of streamIds) {
        if (this.relaxedQueues.get(id) === settled) this.relaxedQueues.delete(id);
      }
    }
  }

  /**
   * The part with each event's chain link, and the exact revision it must be
   * appended at; `retried` when its events were found already stored.
   */
  private async chained(part: StreamAppend): Promise<{ part: StreamAppend; retried: boolean }> {
    if (part.events.length === 0) return { part, retried: false };
    const predecessor = await this.predecessorOf(part);
    return {
      part: {
        streamId: part.streamId,
        events: linkEvents(part.streamId, predecessor, part.events),
        expectedRevision: predecessor.expectedRevision,
      },
      retried: predecessor.retried === true,
    };
  }

  private async predecessorOf(part: StreamAppend): Promise<Predecessor> {
    const { streamId, expectedRevision } = part;
    if (expectedRevision === 'no_stream') {
      return { revision: -1n, hash: null, expectedRevision };
    }
    if (typeof expectedRevision === 'bigint') {
      const [event] = await this.inner.readStream(streamId, {
        direction: 'backwards',
        fromRevision: expectedRevision,
        maxCount: 1,
      });
      // Not there (the stream is shorter): the adapter refuses the append.
      const hash = event?.revision === expectedRevision ? hashOf(event) : null;
      return { revision: expectedRevision, hash, expectedRevision };
    }
    const retried = await this.earlierAppendOf(part);
    if (retried !== undefined) {
      // Its hashes are never stored: the adapter answers the first append's result.
      return {
        revision: retried,
        hash: null,
        expectedRevision: retried < 0n ? 'no_stream' : retried,
        retried: true,
      };
    }
    const [last] = await this.inner.readStream(streamId, { direction: 'backwards', maxCount: 1 });
    if (!last) {
      if (expectedRevision === 'stream_exists') {
        throw new WrongExpectedRevisionError(streamId, expectedRevision, 'no_stream');
      }
      return { revision: -1n, hash: null, expectedRevision: 'no_stream' };
    }
    return { revision: last.revision, hash: hashOf(last), expectedRevision: last.revision };
  }

  /**
   * For a part sent with `any` or `stream_exists`: when its first event is
   * already in the stream (a retried batch), the revision just before it.
   */
  private async earlierAppendOf(part: StreamAppend): Promise<bigint | undefined> {
    const [first] = part.events;
    const earlier = await this.inner.readCommand(part.streamId, first.metadata.commandId);
    const found = earlier.find((event) => event.metadata.eventId === first.metadata.eventId);
    return found ? found.revision - 1n : undefined;
  }

  multiStreamAtomicity(): Promise<'atomic' | 'sequential'> {
    return this.inner.multiStreamAtomicity();
  }

  readCommand(streamId: string, commandId: string): Promise<RecordedEvent[]> {
    return this.inner.readCommand(streamId, commandId);
  }

  readStream(streamId: string, options?: ReadStreamOptions): Promise<RecordedEvent[]> {
    return this.inner.readStream(streamId, options);
  }

  readAll(options?: ReadAllOptions): Promise<RecordedEvent[]> {
    return this.inner.readAll(options);
  }

  readPage(options: ReadPageOptions): Promise<LogPage> {
    return this.inner.readPage(options);
  }

  readFirm(firmId: string, options: ReadFirmOptions): Promise<FirmPage> {
    return this.inner.readFirm(firmId, options);
  }

  subscribeToAll(options: SubscribeOptions): StoreSubscription {
    return this.inner.subscribeToAll(options);
  }

  headPosition(): Promise<bigint> {
    return this.inner.headPosition();
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

const isRelaxed = (expected: ExpectedRevision) =>
  expected === 'any' || expected === 'stream_exists';

/** An event RFC 8785 cannot put in canonical form (a lone surrogate in a string): it cannot be chained. */
export class UnhashableEventError extends Error {
  constructor(
    readonly streamId: string,
    readonly eventType: string,
  ) {
    super(`An event ${eventType} for ${streamId} holds a value that cannot be hashed`);
    this.name = 'UnhashableEventError';
  }
}

/**
 * `events` with their chain links (`metadata.hash`, `metadata.previousHash`),
 * as appended after `predecessor`: the stream's last event, its revision
 * (-1n: none) and its hash (null: none, or unchained). The one place both the
 * decorator and the SQLite adapter (in its write transaction) link events.
 * Throws UnhashableEventError.
 */
export function linkEvents(
  streamId: string,
  predecessor: { revision: bigint; hash: string | null },
  events: readonly NewEvent[],
): NewEvent[] {
  let previousHash = predecessor.hash;
  let revision = predecessor.revision;
  return events.map((event): NewEvent => {
    revision += 1n;
    const { stored, hash } = hashed(streamId, revision, event, previousHash);
    const metadata: ChainedMetadata = { ...stored.metadata, hash, previousHash };
    previousHash = hash;
    return { type: event.type, data: stored.data, metadata };
  });
}

/** The hash a stored event carries, or null when it is unchained or unreadable. */
function hashOf(event: RecordedEvent): string | null {
  if (event.corrupt !== undefined) return null;
  return chainLinkOf(event.metadata)?.hash ?? null;
}

/**
 * The event as a reader will get it back, without chain fields a caller may
 * have passed, and its hash. Almost always the event itself: only data that
 * the canonical form refuses (NaN, Infinity, which JSON stores as null) is
 * taken through JSON first, so that the hash is over what is stored. A lone
 * surrogate survives JSON and is refused (RFC 8785 cannot hash it):
 * UnhashableEventError, and nothing is appended.
 */
function hashed(
  streamId: string,
  revision: bigint,
  event: NewEvent,
  previousHash: string | null,
): { stored: ChainedContent & { metadata: EventMetadata }; hash: string } {
  const { hash: _hash, previousHash: _previous, ...metadata } = event.metadata as ChainedMetadata;
  const content = { streamId, revision, type: event.type, data: event.data, metadata };
  try {
    return { stored: content, hash: eventHash(content, previousHash) };
  } catch {
    const json = JSON.parse(JSON.stringify({ data: event.data, metadata })) as {
      data: NewEvent['data'];
      metadata: EventMetadata;
    };
    const stored = { ...content, data: json.data, metadata: json.metadata };
    try {
      return { stored, hash: eventHash(stored, previousHash) };
    } catch {
      throw new UnhashableEventError(streamId, event.type);
    }
  }
}
