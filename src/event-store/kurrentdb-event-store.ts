/**
 * The production event log: KurrentDB (EventStoreDB) through its official client.
 *
 * Mapping decisions:
 * - The port's global `position` is the event's commit position. For every write
 *   the server makes today (implicit transactions) each event has its own log
 *   position and commit == prepare, so the commit position alone is unique and
 *   strictly increasing in $all order; it is what a checkpoint needs to resume.
 *   To resume from it we pass `{ commit: p, prepare: p }` and drop events whose
 *   commit position is <= p, which makes "after" exclusive whatever the server's
 *   own inclusiveness is.
 * - System events (type or stream starting with '$': stream metadata, link
 *   events, server bookkeeping) are not part of the port's log and are skipped.
 * - The KurrentDB event id is `metadata.eventId`, so the server's own idempotent
 *   append check applies: re-sending the same ids with the same expected revision
 *   returns the first write's result. With 'any' the server's check is best
 *   effort, and ids reused in a different batch or stream are not detected
 *   (this adapter never raises DuplicateEventIdError). The server's answer to
 *   a retried write looks like a write's, so `alreadyStored` is set only when
 *   the revision answered cannot be this write's, and left unknown otherwise
 *   (the command handler then reads the command's events back).
 * - Revisions and positions are converted with BigInt(): depending on the code
 *   path (gRPC or the native bridge) the client hands back numbers or bigints.
 * - Multi-stream appends (a seat and its factor) are atomic from KurrentDB 25.1:
 *   `appendRecords` (26.1+) also checks the revision of a stream it writes
 *   nothing to; `multiStreamAppend` (25.1) cannot, so such a stream is checked
 *   by a read just before the append (a window of one round trip, documented in
 *   ADR 0013). Older servers get the parts one after another, in the order
 *   given; the seat keeper repairs a crash between them. These v2 calls take
 *   metadata as string values only: ours travels as one JSON string property,
 *   `mfaMetadata`, and is unpacked on read.
 * - `readFirm` reads $all with a server-side stream-name filter, the regular
 *   expression of the firm's streams (`^[a-z]+-<firm>(/|$)`, the firm id
 *   escaped), so the server passes over every other firm; the metadata check
 *   (an event naming another firm is not the firm's) is made here.
 * - `readCommand` has no server-side index to ask: the adapter keeps, per
 *   recently used stream, the command ids it has read, and reads only the
 *   events appended since (bounded memory: the least recently used streams go).
 */
import {
  ANY,
  AppendConsistencyViolationError,
  BACKWARDS,
  DeadlineExceededError,
  END,
  FORWARDS,
  KurrentDBClient,
  NO_STREAM,
  NotFoundError,
  START,
  STREAM_EXISTS,
  STREAM_STATE,
  StreamNotFoundError,
  UnavailableError,
  UnsupportedError,
  WrongExpectedVersionError,
  excludeSystemEvents,
  jsonEvent,
  streamNameFilter,
  type AllStreamResolvedEvent,
  type AllStreamSubscription,
  type AppendStreamState,
  type EventData,
  type ReadPosition,
  type ResolvedEvent,
} from '@kurrent/kurrentdb-client';
import {
  AppendResult,
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
import { fromDecoded, ofFirm } from './stored-event';

type Numeric = number | bigint;

/** The v2 append APIs carry metadata as string values: ours goes as one JSON string. */
const PACKED_METADATA = 'mfaMetadata';
/** Streams whose command ids readCommand keeps in memory. */
const COMMAND_INDEX_STREAMS = 2_000;

type MultiAppendSupport = 'records' | 'multi-stream' | 'sequential';

interface CommandIndex {
  /** The last revision read into `commands`; -1n before any. */
  revision: bigint;
  commands: Map<string, bigint[]>;
}

export class KurrentDbEventStore implements EventStore {
  private readonly client: KurrentDBClient;
  private readonly subscriptions = new Set<StoreSubscription>();
  private closed = false;
  private support: Promise<MultiAppendSupport> | undefined;
  private readonly commandIndexes = new Map<string, CommandIndex>();

  constructor(connectionString: string) {
    this.client = KurrentDBClient.connectionString(connectionString);
  }

  static connect(connectionString: string): KurrentDbEventStore {
    return new KurrentDbEventStore(connectionString);
  }

  async appendToStream(
    streamId: string,
    events: NewEvent[],
    expectedRevision: ExpectedRevision,
  ): Promise<AppendResult> {
    if (this.closed) throw new Error('Event store is closed');
    if (events.length === 0) throw new Error('Nothing to append');
    let result;
    try {
      result = await this.client.appendToStream(
        streamId,
        events.map((event) =>
          jsonEvent({
            id: event.metadata.eventId,
            type: event.type,
            data: event.data,
            metadata: { ...event.metadata },
          }),
        ),
        { streamState: toStreamState(expectedRevision) },
      );
    } catch (error) {
      if (error instanceof WrongExpectedVersionError) {
        throw new WrongExpectedRevisionError(
          streamId,
          expectedRevision,
          error.actualState === NO_STREAM ? 'no_stream' : BigInt(error.actualState),
        );
      }
      throw error;
    }
    if (!result.success) {
      // Only with `throwOnAppendFailure=false` in the connection string.
      const last = await this.lastEvent(streamId);
      throw new WrongExpectedRevisionError(
        streamId,
        expectedRevision,
        last?.revision ?? 'no_stream',
      );
    }
    const nextExpectedRevision = BigInt(result.nextExpectedRevision);
    let position = result.position ? BigInt(result.position.commit) : undefined;
    if (events.length > 1 || position === undefined) {
      // The server answers a multi-event write with the position of the write,
      // not of its last event; the port promises the last event's position.
      const last = await this.lastEvent(streamId, nextExpectedRevision);
      position = last?.position ?? position;
    }
    if (position === undefined) throw new Error(`KurrentDB returned no position for ${streamId}`);
    return {
      nextExpectedRevision,
      position,
      alreadyStored: retriedWrite(expectedRevision, events.length, nextExpectedRevision),
    };
  }

  async appendToStreams(appends: readonly StreamAppend[]): Promise<AppendResult[]> {
    if (this.closed) throw new Error('Event store is closed');
    const writing = appends.filter((part) => part.events.length > 0);
    if (writing.length === 0) throw new Error('Nothing to append');
    const support = await this.multiAppendSupport();
    if (support === 'sequential') {
      // Not atomic: the order given is the order of the appends (ADR 0013).
      const results: AppendResult[] = [];
      for (const part of appends) {
        results.push(
          part.events.length > 0
            ? await this.appendToStream(part.streamId, part.events, part.expectedRevision)
            : await this.checkRevision(part),
        );
      }
      return results;
    }
    if (support === 'multi-stream') {
      // multiStreamAppend cannot check a stream it does not write to: read it just before.
      await Promise.all(
        appends.filter((part) => part.events.length === 0).map((part) => this.checkRevision(part)),
      );
    }
    try {
      if (support === 'records') {
        await this.client.appendRecords(
          writing.flatMap((part) =>
            part.events.map((event) => ({ streamName: part.streamId, record: packed(event) })),
          ),
          appends.map((part) => ({
            type: STREAM_STATE,
            streamName: part.streamId,
            expectedState: toStreamState(part.expectedRevision),
          })),
        );
      } else {
        await this.client.multiStreamAppend(
          writing.map((part) => ({
            streamName: part.streamId,
            expectedState: toStreamState(part.expectedRevision),
            events: part.events.map(packed),
          })),
        );
      }
    } catch (error) {
      throw toPortError(error, appends);
    }
    // The server answers revisions; the port promises each part's last position too.
    return Promise.all(
      appends.map(async (part) => {
        const last = await this.lastEvent(part.streamId);
        // No `alreadyStored`: the server does not say whether it wrote the events, and the
        // revision is read after the append (a later writer's events may be in it).
        return {
          nextExpectedRevision: last?.revision ?? -1n,
          position: part.events.length > 0 ? (last?.position ?? 0n) : 0n,
        };
      }),
    );
  }

  async multiStreamAtomicity(): Promise<'atomic' | 'sequential'> {
    return (await this.multiAppendSupport()) === 'sequential' ? 'sequential' : 'atomic';
  }

  /** Which atomic append the server offers, asked once. */
  private multiAppendSupport(): Promise<MultiAppendSupport> {
    this.support ??= (async () => {
      // The client asks the server's feature list before either call; an empty request
      // writes nothing. Only UnsupportedError says "not here": the server refusing the
      // empty request itself still means it knows the call.
      const knows = async (call: () => Promise<unknown>) => {
        try {
          await call();
          return true;
        } catch (error) {
          if (error instanceof UnsupportedError) return false;
          if (error instanceof UnavailableError || error instanceof DeadlineExceededError) {
            throw error;
          }
          return true;
        }
      };
      let support: MultiAppendSupport = 'sequential';
      if (await knows(() => this.client.appendRecords([], []))) support = 'records';
      else if (await knows(() => this.client.multiStreamAppend([]))) support = 'multi-stream';
      return support;
    })();
    // A server that could not be asked is asked again next time.
    this.support.catch(() => (this.support = undefined));
    return this.support;
  }

  /** A part with nothing to write: its stream must still be where the decision saw it. */
  private async checkRevision(part: StreamAppend): Promise<AppendResult> {
    const last = await this.lastEvent(part.streamId);
    const current = last?.revision ?? null;
    const expected = part.expectedRevision;
    const matches =
      expected === 'any' ||
      (expected === 'no_stream' && current === null) ||
      (expected === 'stream_exists' && current !== null) ||
      (typeof expected === 'bigint' && current === expected);
    if (!matches)
      throw new WrongExpectedRevisionError(part.streamId, expected, current ?? 'no_stream');
    return { nextExpectedRevision: current ?? -1n, position: 0n };
  }

  /**
   * Reads the stream forwards from the last revision this process indexed, so a
   * stream is scanned once and then only for what was appended since.
   */
  async readCommand(streamId: string, commandId: string): Promise<RecordedEvent[]> {
    let index = this.commandIndexes.get(streamId);
    this.commandIndexes.delete(streamId);
    index ??= { revision: -1n, commands: new Map() };
    const fresh = await this.readStream(streamId, { fromRevision: index.revision + 1n });
    for (const event of fresh) {
      const id = event.metadata.commandId;
      if (typeof id === 'string') {
        const revisions = index.commands.get(id) ?? [];
        revisions.push(event.revision);
        index.commands.set(id, revisions);
      }
      index.revision = event.revision;
    }
    this.commandIndexes.set(streamId, index);
    if (this.commandIndexes.size > COMMAND_INDEX_STREAMS) {
      this.commandIndexes.delete(this.commandIndexes.keys().next().value as string);
    }
    const revisions = index.commands.get(commandId);
    if (!revisions) return [];
    const events = await Promise.all(
      revisions.map(async (revision) => {
        const [event] = await this.readStream(streamId, { fromRevision: revision, maxCount: 1 });
        return event;
      }),
    );
    return events.filter((event): event is RecordedEvent => event !== undefined);
  }

  async readStream(streamId: string, options: ReadStreamOptions = {}): Promise<RecordedEvent[]> {
    const backwards = options.direction === 'backwards';
    const events: RecordedEvent[] = [];
    try {
      for await (const resolved of this.client.readStream(streamId, {
        direction: backwards ? BACKWARDS : FORWARDS,
        fromRevision: options.fromRevision ?? (backwards ? END : START),
        ...(options.maxCount === undefined ? {} : { maxCount: options.maxCount }),
      })) {
        const event = toRecordedEvent(resolved);
        if (event) events.push(event);
      }
    } catch (error) {
      if (error instanceof StreamNotFoundError || error instanceof NotFoundError) return [];
      throw error;
    }
    return events;
  }

  async readAll(options: ReadAllOptions = {}): Promise<RecordedEvent[]> {
    const after = options.after ?? 0n;
    const maxCount = options.maxCount ?? 1000;
    const events: RecordedEvent[] = [];
    if (maxCount <= 0) return events;
    // Unfiltered, with the limit applied here: a server-side maxCount would count
    // the skipped system events and could return an empty page before the head.
    for await (const resolved of this.client.readAll({
      direction: FORWARDS,
      fromPosition: fromPosition(after),
    })) {
      const event = toRecordedEvent(resolved);
      if (!event || isSystemEvent(event) || event.position <= after) continue;
      events.push(event);
      if (events.length >= maxCount) break;
    }
    return events;
  }

  /** Unfiltered on the server (system events would count against a filtered read's limit); types are kept here. */
  async readPage(options: ReadPageOptions): Promise<LogPage> {
    const events = await this.readAll({ after: options.after, maxCount: options.maxCount });
    const through = events.length > 0 ? events[events.length - 1].position : options.after;
    const scanned = events.length;
    if (!options.types) return { events, through, scanned };
    const types = new Set(options.types);
    return { events: events.filter((event) => types.has(event.type)), through, scanned };
  }

  async readFirm(firmId: string, options: ReadFirmOptions): Promise<FirmPage> {
    const maxCount = Math.max(1, options.maxCount);
    const types = options.types ? new Set(options.types) : undefined;
    const events: RecordedEvent[] = [];
    let through = options.after;
    let returned = 0;
    // One more than asked: the server may hand back the event at `after` itself (the
    // start position is inclusive for some servers), which is dropped here.
    for await (const resolved of this.client.readAll({
      direction: FORWARDS,
      fromPosition: fromPosition(options.after),
      maxCount: maxCount + 1,
      filter: streamNameFilter({ regex: firmStreamsRegex(firmId) }),
    })) {
      const event = toRecordedEvent(resolved);
      if (!event || event.position <= options.after) continue;
      through = event.position;
      if ((!types || types.has(event.type)) && ofFirm(event, firmId)) events.push(event);
      if (++returned >= maxCount) break;
    }
    return { events, through };
  }

  async headPosition(): Promise<bigint> {
    for await (const resolved of this.client.readAll({ direction: BACKWARDS, fromPosition: END })) {
      const event = toRecordedEvent(resolved);
      if (event && !isSystemEvent(event)) return event.position;
    }
    return 0n;
  }

  subscribeToAll(options: SubscribeOptions): StoreSubscription {
    const subscription = this.client.subscribeToAll({
      fromPosition: fromPosition(options.after),
      filter: excludeSystemEvents(),
    });
    // Errors reach the loop through the iterator; this keeps a late one (after
    // the loop has ended) from becoming an uncaught 'error' event.
    subscription.on('error', () => undefined);
    let stopped = false;
    let position = options.after;
    let busy = false;
    // The server's "caught up" is emitted ahead of the events still buffered in
    // the stream; it is reported once those have been handled.
    let pendingBeforeCaughtUp: number | undefined;
    const reportCaughtUp = () => {
      pendingBeforeCaughtUp = undefined;
      if (!stopped) options.onCaughtUp?.(position);
    };
    subscription.on('caughtUp', () => {
      pendingBeforeCaughtUp = subscription.readableLength;
      if (!busy && pendingBeforeCaughtUp === 0) reportCaughtUp();
    });

    const done = (async () => {
      try {
        for await (const resolved of subscription) {
          if (stopped) break;
          busy = true;
          if (pendingBeforeCaughtUp) pendingBeforeCaughtUp -= 1;
          const event = toRecordedEvent(resolved);
          if (event && !isSystemEvent(event) && event.position > position) {
            await options.onEvents([event]);
            position = event.position;
          }
          busy = false;
          if (pendingBeforeCaughtUp === 0) reportCaughtUp();
        }
      } catch (error) {
        if (!stopped) options.onError?.(error);
      } finally {
        await unsubscribe(subscription);
      }
    })();

    const handle: StoreSubscription = {
      stop: async () => {
        stopped = true;
        await unsubscribe(subscription);
        subscription.destroy();
        await done;
        this.subscriptions.delete(handle);
      },
    };
    this.subscriptions.add(handle);
    return handle;
  }

  /** The stream's last event, or the event at `revision`; undefined if there is none. */
  private async lastEvent(streamId: string, revision?: bigint): Promise<RecordedEvent | undefined> {
    const [event] = await this.readStream(streamId, {
      direction: 'backwards',
      ...(revision === undefined ? {} : { fromRevision: revision }),
      maxCount: 1,
    });
    return event;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([...this.subscriptions].map((subscription) => subscription.stop()));
    await this.client.dispose();
  }
}

function toStreamState(expected: ExpectedRevision): AppendStreamState {
  switch (expected) {
    case 'no_stream':
      return NO_STREAM;
    case 'stream_exists':
      return STREAM_EXISTS;
    case 'any':
      return ANY;
    default:
      return expected;
  }
}

/** An event for the v2 append APIs: the metadata as one JSON string property. */
function packed(event: NewEvent): EventData {
  return jsonEvent({
    id: event.metadata.eventId,
    type: event.type,
    data: event.data,
    metadata: { [PACKED_METADATA]: JSON.stringify(event.metadata) },
  });
}

/** Our metadata from a v2 append travels as one JSON string property; anything else as it is. */
function unpackedMetadata(metadata: unknown): unknown {
  const packedValue = (metadata as Record<string, unknown> | null | undefined)?.[PACKED_METADATA];
  if (typeof packedValue !== 'string') return metadata;
  try {
    return JSON.parse(packedValue) as unknown;
  } catch {
    // Not JSON: handed on as is, and the event is read as corrupt.
    return packedValue;
  }
}

/** The v2 APIs' refusals, as the port's errors. */
function toPortError(error: unknown, appends: readonly StreamAppend[]): unknown {
  if (error instanceof WrongExpectedVersionError) {
    const part = appends.find((candidate) => candidate.streamId === error.streamName) ?? appends[0];
    return new WrongExpectedRevisionError(
      part.streamId,
      part.expectedRevision,
      error.actualState === NO_STREAM ? 'no_stream' : BigInt(error.actualState as Numeric),
    );
  }
  if (error instanceof AppendConsistencyViolationError && error.violations.length > 0) {
    const violation = error.violations[0];
    const part =
      appends.find((candidate) => candidate.streamId === violation.streamName) ?? appends[0];
    const actual = violation.actualState;
    return new WrongExpectedRevisionError(
      part.streamId,
      part.expectedRevision,
      actual === NO_STREAM ? 'no_stream' : BigInt(actual as Numeric),
    );
  }
  return error;
}

function fromPosition(after: bigint): ReadPosition {
  return after === 0n ? START : { commit: after, prepare: after };
}

/** The names of a firm's streams, `category-{firmId}[/{id}]`, as a .NET regular expression. */
export function firmStreamsRegex(firmId: string): string {
  return `^[a-z]+-${firmId.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(/|$)`;
}

function isSystemEvent(event: RecordedEvent): boolean {
  return event.type.startsWith('$') || event.streamId.startsWith('$');
}

function toRecordedEvent(
  resolved: ResolvedEvent | AllStreamResolvedEvent,
): RecordedEvent | undefined {
  const event = resolved.event;
  if (!event) return undefined;
  const commit: Numeric | undefined = event.position?.commit ?? resolved.commitPosition;
  if (commit === undefined) {
    throw new Error(
      `KurrentDB returned no position for ${event.streamId}@${String(event.revision)}`,
    );
  }
  // Never throws on what the event holds: unreadable data or metadata marks it `corrupt`.
  return fromDecoded(
    {
      streamId: event.streamId,
      revision: BigInt(event.revision as Numeric),
      position: BigInt(commit),
      type: event.type,
    },
    event.data,
    unpackedMetadata(event.metadata),
  );
}

async function unsubscribe(subscription: AllStreamSubscription): Promise<void> {
  try {
    await subscription.unsubscribe();
  } catch {
    // The stream never opened or is already gone.
  }
}

/**
 * Whether an append the server accepted was a retried write, as far as its
 * answer tells: the server's own retry detection answers the first write's
 * revision as if written now, so only a revision that this write cannot have
 * left (the events are elsewhere in the stream) says so. Otherwise undefined:
 * unknown (AppendResult.alreadyStored).
 */
function retriedWrite(
  expectedRevision: ExpectedRevision,
  count: number,
  nextExpectedRevision: bigint,
): true | undefined {
  const base =
    typeof expectedRevision === 'bigint'
      ? expectedRevision
      : expectedRevision === 'no_stream'
        ? -1n
        : undefined;
  return base !== undefined && nextExpectedRevision !== base + BigInt(count) ? true : undefined;
}
