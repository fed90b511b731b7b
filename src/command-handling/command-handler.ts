import { Inject, Injectable, Logger } from '@nestjs/common';
import { setTimeout as delay } from 'node:timers/promises';
import { backoffDelay } from '../shared/backoff';
import { Decider, DecisionContext, DomainEvent, evolveAll } from '../shared/decider';
import { Clock, CLOCK } from '../shared/clock';
import { conflict, DomainError } from '../shared/domain-error';
import { deterministicId } from '../shared/deterministic-id';
import {
  ActorRole,
  AppendResult,
  DuplicateEventIdError,
  EVENT_STORE,
  EventStore,
  ExpectedRevision,
  JsonObject,
  NewEvent,
  RecordedEvent,
  StreamAppend,
  WrongExpectedRevisionError,
} from '../event-store/event-store.port';
import { currentSchemaVersion, upcasters } from '../event-store/upcasting';

/** Who asks, on whose behalf, and under which ids: becomes every event's metadata. */
export interface CommandEnvelope {
  commandId: string;
  /**
   * True when `commandId` was made for this request alone (a random UUID): no
   * earlier append can carry it, so the handler skips looking it up. Leave it
   * unset for ids that a retry repeats (an Idempotency-Key's, a process
   * manager's derived ones).
   */
  freshCommandId?: boolean;
  firmId: string;
  actor: { id: string; role: ActorRole };
  correlationId: string;
  causationId?: string;
}

export interface CommandOutcome<State> {
  /** Global position of the last event appended, or of the stream's last event when nothing changed. */
  position: bigint;
  events: DomainEvent[];
  state: State;
  /**
   * The command id was already in the stream: nothing was decided or appended
   * now; `events` and `position` are what the first run appended, `state` is
   * the stream's current state.
   */
  alreadyApplied: boolean;
}

/** One stream taking part in a command that spans several (a seat and the factor that holds it). */
export interface Participant<Event extends DomainEvent = DomainEvent, State = unknown> {
  streamId: string;
  decider: Folding<Event, State>;
}

/* eslint-disable @typescript-eslint/no-explicit-any --
   A decider's folding functions take its own event and state types (contravariant): only `any`
   lets one record hold deciders of different streams while each keeps its types. */
type Participants = Record<string, Participant<any, any>>;
type StateOf<P> = P extends Participant<any, infer State> ? State : never;
type EventOf<P> = P extends Participant<infer Event, any> ? Event : never;
/* eslint-enable @typescript-eslint/no-explicit-any */
export type StatesOf<P extends Participants> = { [K in keyof P]: StateOf<P[K]> };
export type EventsOf<P extends Participants> = { [K in keyof P]?: EventOf<P[K]>[] };

export interface MultiStreamOutcome<P extends Participants> {
  /** Position of the last event appended (or already there), or the latest of the streams when nothing changed. */
  position: bigint;
  events: { [K in keyof P]: EventOf<P[K]>[] };
  states: StatesOf<P>;
  alreadyApplied: boolean;
}

/**
 * Attempts before a command gives up with 409 concurrency-conflict. Within a
 * process, commands on one stream queue (oneAtATime); the losers are writers
 * of other processes, and a loser competes with the winner's next queued
 * command: 8 was lost in a row now and then by two instances sharing a hot
 * stream on a busy machine (test/process/two-processes.spec.ts).
 */
const MAX_ATTEMPTS = 16;
/** Folded states kept in memory, most recently used first out last. */
const MAX_CACHED_STREAMS = 20_000;

export type Folding<Event extends DomainEvent, State> = Pick<
  Decider<unknown, Event, State, never>,
  'initialState' | 'evolve' | 'stateIsInLastEvent' | 'evolveMany' | 'eventTypes'
>;

interface CachedState {
  decider: object;
  state: unknown;
  revision: bigint;
  position: bigint;
  /** The log position through which the state is known current (-1n: read before use). */
  checkedThrough: bigint;
}

interface Loaded<State> {
  state: State;
  expectedRevision: ExpectedRevision;
  lastPosition: bigint;
}

/**
 * Load the stream, fold it into state, decide, append with the revision we
 * read. When another writer got there first the append is refused and we
 * start over on the fresher state, so a rule is always checked against the
 * state it changes.
 *
 * A command applies once (DESIGN §6): before deciding, the handler asks the
 * store whether this command id already appended to the stream, and if so
 * answers what it appended then, whatever the stream's state by now. The
 * expected revision closes the race with a concurrent retry: of two runs that
 * both found nothing, the second append is refused and its next attempt finds
 * the first one's events.
 */
@Injectable()
export class CommandHandler {
  private readonly logger = new Logger('CommandHandler');
  private readonly streamQueues = new Map<string, Promise<void>>();
  /**
   * The last folded state of recently used streams. A load reads only the
   * events after the cached revision (another process may have appended), so
   * a long stream is folded once, not at every command.
   */
  private readonly folded = new Map<string, CachedState>();
  /** Event types a fold passed over, with how many times: logged once per type. */
  readonly unknownEventTypes = new Map<string, number>();

  constructor(
    @Inject(EVENT_STORE) private readonly store: EventStore,
    @Inject(CLOCK) private readonly clock: Clock,
  ) {}

  async handle<Command, Event extends DomainEvent, State, Context extends DecisionContext>(
    streamId: string,
    decider: Decider<Command, Event, State, Context>,
    command: Command,
    envelope: CommandEnvelope,
    loadContext: (now: string) => Promise<Context> = (now) => Promise.resolve({ now } as Context),
  ): Promise<CommandOutcome<State>> {
    const outcome = await this.handleAcross(
      { stream: { streamId, decider } },
      (states, context: Context) => ({
        stream: decider.decide(command, states.stream as State, context),
      }),
      envelope,
      loadContext,
    );
    return {
      position: outcome.position,
      events: outcome.events.stream,
      state: outcome.states.stream as State,
      alreadyApplied: outcome.alreadyApplied,
    };
  }

  /**
   * A command over several streams, decided on all their states and appended
   * as one unit, each stream at the revision it was read at (DESIGN §6: a
   * seat and the factor that holds it commit atomically). `decide` returns
   * the events per participant (none for a stream it only relied on: that
   * stream's revision is still checked). On a store without atomic
   * multi-stream appends the parts are appended in the order of
   * `participants`; put first the part a process manager can repair.
   * Errors: what `decide` throws (nothing appended), 409 concurrency-conflict.
   */
  async handleAcross<P extends Participants, Context extends DecisionContext>(
    participants: P,
    decide: (states: StatesOf<P>, context: Context) => EventsOf<P>,
    envelope: CommandEnvelope,
    loadContext: (now: string) => Promise<Context> = (now) => Promise.resolve({ now } as Context),
  ): Promise<MultiStreamOutcome<P>> {
    const streamIds = Object.values(participants).map((participant) => participant.streamId);
    return this.oneAtATime(streamIds, () =>
      this.decideAndAppend(participants, decide, envelope, loadContext),
    );
  }

  private async decideAndAppend<P extends Participants, Context extends DecisionContext>(
    participants: P,
    decide: (states: StatesOf<P>, context: Context) => EventsOf<P>,
    envelope: CommandEnvelope,
    loadContext: (now: string) => Promise<Context>,
  ): Promise<MultiStreamOutcome<P>> {
    const keys = Object.keys(participants) as Array<keyof P & string>;
    for (let attempt = 1; ; attempt++) {
      const loaded = await Promise.all(
        keys.map((key) => this.load(participants[key].streamId, participants[key].decider)),
      );
      const states = Object.fromEntries(
        keys.map((key, index) => [key, loaded[index].state]),
      ) as StatesOf<P>;
      const earlier = await this.earlierRun(participants, keys, states, envelope);
      if (earlier) return earlier;
      const context = await loadContext(this.clock.now().toISOString());
      const decided = decide(states, context);
      const events = Object.fromEntries(
        keys.map((key) => [key, (decided[key] ?? []) as DomainEvent[]]),
      ) as MultiStreamOutcome<P>['events'];
      const latest = loaded.reduce(
        (max, { lastPosition }) => (lastPosition > max ? lastPosition : max),
        0n,
      );
      const writing = keys.filter((key) => events[key].length > 0);
      if (writing.length === 0) {
        return { position: latest, events, states, alreadyApplied: false };
      }
      try {
        const appends: StreamAppend[] = keys.map((key, index) => ({
          streamId: participants[key].streamId,
          events: events[key].map((event, eventIndex) =>
            this.toNewEvent(event, eventIndex, participants[key].streamId, envelope, context),
          ),
          expectedRevision: loaded[index].expectedRevision,
        }));
        const results = await this.store.appendToStreams(appends);
        if (await this.storedByAnotherRun(appends, results, envelope)) {
          // A retried write: the store answered what a run of this command (another
          // process's, say) stored, whatever revision this run decided on. Its decision
          // and the state folded from it were never committed: answer the stored run.
          const stored = await this.storedRun(participants, keys, envelope);
          if (stored) return stored;
          throw new Error(
            `The store answered a retried write of command ${envelope.commandId} it does not hold`,
          );
        }
        const next = Object.fromEntries(
          keys.map((key, index) => {
            const { decider, streamId } = participants[key];
            const state = evolveAll(decider, loaded[index].state, events[key]);
            if (events[key].length > 0) {
              // The append's own position: the store's expected-revision check proved that
              // nothing else was in the stream then; anything later shows in its log.
              this.remember(
                streamId,
                decider,
                state,
                results[index].nextExpectedRevision,
                results[index].position,
                results[index].position,
              );
            }
            return [key, state];
          }),
        ) as StatesOf<P>;
        const position = results.reduce((max, { position: p }) => (p > max ? p : max), 0n);
        return { position, events, states: next, alreadyApplied: false };
      } catch (error) {
        if (error instanceof DuplicateEventIdError) {
          // These event ids derive from the command id: a concurrent run of the same command
          // got there first, and answers on the state as it is now (not the state this run
          // decided on). Found in none of the streams, the ids were reused: a misuse.
          const stored = await this.storedRun(participants, keys, envelope);
          if (stored) return stored;
          throw conflict(
            'idempotency-key-in-use',
            'This Idempotency-Key was already used by a command that changed this resource differently.',
          );
        }
        if (!(error instanceof WrongExpectedRevisionError)) throw error;
        if (attempt >= MAX_ATTEMPTS) {
          throw conflict(
            'concurrency-conflict',
            'The resource kept changing while the command was decided; retry it.',
          );
        }
        // Jittered back-off so that writers racing on one stream spread out (at most 40 ms).
        await delay(backoffDelay(attempt, { firstMs: 5, maxMs: 40, jitter: 'full' }));
      }
    }
  }

  /**
   * The outcome of an earlier run of this command, if its id is in any of the
   * streams: a command's parts are appended together, so one found is all of it
   * (on a store without atomic appends, a part never appended stays missing:
   * the process managers repair that, not a retry).
   */
  private async earlierRun<P extends Participants>(
    participants: P,
    keys: Array<keyof P & string>,
    states: StatesOf<P>,
    envelope: CommandEnvelope,
  ): Promise<MultiStreamOutcome<P> | undefined> {
    if (envelope.freshCommandId) return undefined;
    const found = await Promise.all(
      keys.map((key) => this.store.readCommand(participants[key].streamId, envelope.commandId)),
    );
    if (found.every((events) => events.length === 0)) return undefined;
    const events = Object.fromEntries(
      keys.map((key, index) => [key, found[index].map((event) => asDomainEvent(event))]),
    ) as MultiStreamOutcome<P>['events'];
    const position = found
      .flat()
      .reduce((max, event) => (event.position > max ? event.position : max), 0n);
    return { position, events, states, alreadyApplied: true };
  }

  /**
   * Whether the store answered the append with events a run of this command
   * had already stored (a retried write) rather than writing this run's: the
   * store's `alreadyStored`. Where it cannot tell (KurrentDB), the command's
   * events are read back: they are this run's, or the same, when each
   * written stream holds exactly the events decided, right after the revision
   * they were decided on. A fresh command id cannot have been stored before.
   */
  private async storedByAnotherRun(
    appends: readonly StreamAppend[],
    results: readonly AppendResult[],
    envelope: CommandEnvelope,
  ): Promise<boolean> {
    const written = appends
      .map((part, index) => ({ part, flag: results[index].alreadyStored }))
      .filter(({ part }) => part.events.length > 0);
    if (written.some(({ flag }) => flag === true)) return true;
    if (envelope.freshCommandId) return false;
    const unknown = written.filter(({ flag }) => flag === undefined).map(({ part }) => part);
    const found = await Promise.all(
      unknown.map((part) => this.store.readCommand(part.streamId, envelope.commandId)),
    );
    return !unknown.every((part, index) => isStoredAsDecided(part, found[index]));
  }

  /**
   * The answer to a command whose events a run of it had already stored:
   * the cached states of its streams are dropped (this run may have folded
   * them from a state that never was), the streams are loaded afresh, and the
   * stored run is answered on them (`alreadyApplied`). Undefined when the
   * command's events are in none of the streams.
   */
  private async storedRun<P extends Participants>(
    participants: P,
    keys: Array<keyof P & string>,
    envelope: CommandEnvelope,
  ): Promise<MultiStreamOutcome<P> | undefined> {
    for (const key of keys) this.folded.delete(participants[key].streamId);
    const loaded = await Promise.all(
      keys.map((key) => this.load(participants[key].streamId, participants[key].decider)),
    );
    const states = Object.fromEntries(
      keys.map((key, index) => [key, loaded[index].state]),
    ) as StatesOf<P>;
    // Looked up even for a "fresh" id: the store says it holds it.
    return this.earlierRun(participants, keys, states, { ...envelope, freshCommandId: false });
  }

  /**
   * What an earlier run of this command appended to `streamIds`, in log
   * order, with the position of its last event; undefined when it never ran
   * there (or the request carried no Idempotency-Key, so its command id is
   * new). For handlers that check a proof before they decide (a TOTP code, an
   * attestation): a retried command answers its first outcome before any such
   * check, whatever the streams' state by now (DESIGN §6). After a reset, say,
   * the enrollment to check the proof against is gone, but the command ran.
   */
  async earlierOutcome(
    streamIds: readonly string[],
    envelope: CommandEnvelope,
  ): Promise<{ position: bigint; events: RecordedEvent[] } | undefined> {
    if (envelope.freshCommandId) return undefined;
    const found = await Promise.all(
      streamIds.map((streamId) => this.store.readCommand(streamId, envelope.commandId)),
    );
    const events = found.flat().sort((a, b) => (a.position < b.position ? -1 : 1));
    if (events.length === 0) return undefined;
    return { position: events[events.length - 1].position, events };
  }

  /**
   * Commands on one stream run one after another inside this process: a hot
   * stream (a firm's seats, say) would otherwise make every racer but one
   * lose its append and retry, and a crowd of racers could exhaust the retries.
   * A command over several streams waits for all of them; it only ever waits
   * for commands queued before it, so no two commands wait for each other.
   * Other processes are still kept out by the expected revision.
   */
  private async oneAtATime<T>(streamIds: readonly string[], work: () => Promise<T>): Promise<T> {
    const previous = streamIds.map((id) => this.streamQueues.get(id) ?? Promise.resolve());
    const current = (previous.length === 1 ? previous[0] : Promise.all(previous)).then(work);
    const settled = current.then(
      () => undefined,
      () => undefined,
    );
    for (const id of streamIds) this.streamQueues.set(id, settled);
    try {
      return await current;
    } finally {
      for (const id of streamIds) {
        if (this.streamQueues.get(id) === settled) this.streamQueues.delete(id);
      }
    }
  }

  /** The stream's current state: its cached state brought up to date, or a fold from the start. */
  async load<Event extends DomainEvent, State>(
    streamId: string,
    decider: Folding<Event, State>,
  ): Promise<Loaded<State>> {
    if (decider.stateIsInLastEvent) return this.loadLastState(streamId, decider);
    const cached = this.folded.get(streamId);
    const from = cached?.decider === decider ? cached : undefined;
    // Nothing appended to the stream since the cached state was last known current (by any
    // process, as the store's log says): no read. Otherwise read after the cached revision.
    if (from && this.store.streamChangedSince?.(streamId, from.checkedThrough) === false) {
      return {
        state: from.state as State,
        expectedRevision: from.revision,
        lastPosition: from.position,
      };
    }
    // Taken before the read: the read holds every event of the stream up to it.
    const checkedThrough = this.store.checkedHead?.() ?? -1n;
    const recorded = await this.store.readStream(
      streamId,
      from ? { fromRevision: from.revision + 1n } : {},
    );
    const state = evolveAll(
      decider,
      from ? (from.state as State) : decider.initialState(),
      this.known(decider, recorded),
    );
    const last = recorded[recorded.length - 1];
    const revision = last ? last.revision : from?.revision;
    const position = last ? last.position : (from?.position ?? 0n);
    if (revision !== undefined) {
      this.remember(streamId, decider, state, revision, position, checkedThrough);
    }
    return {
      state,
      expectedRevision: revision ?? 'no_stream',
      lastPosition: position,
    };
  }

  /**
   * Each event carries the state it leaves: the stream's last event is the
   * whole state. The last one this code knows, that is: an unknown type after
   * it (a newer version's) must not reset the state to its start (a lockout
   * forgotten).
   */
  private async loadLastState<Event extends DomainEvent, State>(
    streamId: string,
    decider: Folding<Event, State>,
  ): Promise<Loaded<State>> {
    let page = await this.store.readStream(streamId, { direction: 'backwards', maxCount: 1 });
    const [last] = page;
    if (!last) {
      return { state: decider.initialState(), expectedRevision: 'no_stream', lastPosition: 0n };
    }
    const found = {
      state: decider.initialState(),
      expectedRevision: last.revision,
      lastPosition: last.position,
    };
    for (;;) {
      const [known] = this.known<Event>(decider, page).slice(0, 1);
      if (known) return { ...found, state: decider.evolve(decider.initialState(), known) };
      const oldest = page[page.length - 1];
      if (!oldest || oldest.revision === 0n) return found;
      page = await this.store.readStream(streamId, {
        direction: 'backwards',
        fromRevision: oldest.revision - 1n,
        maxCount: 16,
      });
    }
  }

  /**
   * The stream's events in their current shape, without the types this code
   * does not know (DESIGN §6: an event of a newer version, or left after a
   * rollback, is passed over, counted and logged once per type). A corrupt
   * event is different: deciding without it could hand out what it took away
   * (a reset, say), so the stream is refused until it is repaired.
   */
  private known<Event extends DomainEvent>(
    decider: Pick<Folding<Event, unknown>, 'eventTypes'>,
    recorded: readonly RecordedEvent[],
  ): Event[] {
    const types = new Set(decider.eventTypes);
    const events: Event[] = [];
    for (const event of recorded) {
      if (event.corrupt !== undefined) {
        this.logger.error(
          `Stream ${event.streamId} holds an unreadable event at revision ${event.revision} ` +
            `(position ${event.position}): ${event.corrupt}; commands on it are refused`,
        );
        throw new DomainError(
          'stream-unreadable',
          'The history of this resource holds an event that cannot be read; an operator must repair it.',
          'unavailable',
        );
      }
      const current = asDomainEvent<Event>(event);
      if (types.has(current.type)) {
        events.push(current);
        continue;
      }
      const seen = this.unknownEventTypes.get(current.type) ?? 0;
      this.unknownEventTypes.set(current.type, seen + 1);
      if (seen === 0) {
        this.logger.warn(
          `Event type ${current.type} (first at position ${event.position}) is unknown to this version: passed over in every fold`,
        );
      }
    }
    return events;
  }

  private remember(
    streamId: string,
    decider: object,
    state: unknown,
    revision: bigint,
    position: bigint,
    checkedThrough: bigint,
  ): void {
    if ((decider as Folding<DomainEvent, unknown>).stateIsInLastEvent) return;
    this.folded.delete(streamId);
    this.folded.set(streamId, { decider, state, revision, position, checkedThrough });
    if (this.folded.size > MAX_CACHED_STREAMS) {
      this.folded.delete(this.folded.keys().next().value as string);
    }
  }

  /**
   * The event id derives from the command, the stream and the event's index
   * within what the command appends to that stream: the same command run
   * again carries the same ids, so even a run that raced past the command-id
   * lookup cannot store its events twice (the store refuses the ids).
   */
  private toNewEvent(
    event: DomainEvent,
    index: number,
    streamId: string,
    envelope: CommandEnvelope,
    context: DecisionContext,
  ): NewEvent {
    return {
      type: event.type,
      data: event.data as JsonObject,
      metadata: {
        eventId: deterministicId(envelope.commandId, streamId, `#${index}`),
        firmId: envelope.firmId,
        actor: envelope.actor,
        correlationId: envelope.correlationId,
        causationId: envelope.causationId ?? envelope.commandId,
        commandId: envelope.commandId,
        occurredAt: context.now,
        schemaVersion: currentSchemaVersion(event.type),
      },
    };
  }
}

/**
 * Whether `stored` (a command's events in one stream, `readCommand`) are the
 * events of `part`, at the revisions right after the one it was decided on:
 * then the state folded from the decision is the stream's.
 */
function isStoredAsDecided(part: StreamAppend, stored: readonly RecordedEvent[]): boolean {
  const base = typeof part.expectedRevision === 'bigint' ? part.expectedRevision : -1n;
  return (
    (typeof part.expectedRevision === 'bigint' || part.expectedRevision === 'no_stream') &&
    stored.length === part.events.length &&
    stored.every(
      (event, index) =>
        event.revision === base + 1n + BigInt(index) &&
        event.type === part.events[index].type &&
        JSON.stringify(event.data) === JSON.stringify(part.events[index].data),
    )
  );
}

export function asDomainEvent<Event extends DomainEvent>(recorded: RecordedEvent): Event {
  const current = upcasters.upcast(recorded);
  return { type: current.type, data: current.data } as unknown as Event;
}
