import { Inject, Injectable } from '@nestjs/common';
import { setTimeout as delay } from 'node:timers/promises';
import { Decider, DecisionContext, DomainEvent, evolveAll } from '../shared/decider';
import { Clock, CLOCK } from '../shared/clock';
import { conflict } from '../shared/domain-error';
import { deterministicId } from '../shared/deterministic-id';
import {
  ActorRole,
  DuplicateEventIdError,
  EVENT_STORE,
  EventStore,
  ExpectedRevision,
  JsonObject,
  NewEvent,
  RecordedEvent,
  WrongExpectedRevisionError,
} from '../event-store/event-store.port';
import { currentSchemaVersion, upcasters } from '../event-store/upcasting';

/** Who asks, on whose behalf, and under which ids: becomes every event's metadata. */
export interface CommandEnvelope {
  commandId: string;
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

type Folding<Event extends DomainEvent, State> = Pick<
  Decider<unknown, Event, State, never>,
  'initialState' | 'evolve' | 'stateIsInLastEvent' | 'evolveMany'
>;

interface CachedState {
  decider: object;
  state: unknown;
  revision: bigint;
  position: bigint;
}

/**
 * Load the stream, fold it into state, decide, append with the revision we
 * read. When another writer got there first the append is refused and we
 * start over on the fresher state, so a rule is always checked against the
 * state it changes. Event ids derive from the command id: a command that is
 * retried after its events were stored appends nothing the second time.
 */
@Injectable()
export class CommandHandler {
  private readonly streamQueues = new Map<string, Promise<void>>();
  /**
   * The last folded state of recently used streams. A load reads only the
   * events after the cached revision (another process may have appended), so
   * a long stream is folded once, not at every command.
   */
  private readonly folded = new Map<string, CachedState>();

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
    return this.oneAtATime(streamId, () =>
      this.decideAndAppend(streamId, decider, command, envelope, loadContext),
    );
  }

  private async decideAndAppend<
    Command,
    Event extends DomainEvent,
    State,
    Context extends DecisionContext,
  >(
    streamId: string,
    decider: Decider<Command, Event, State, Context>,
    command: Command,
    envelope: CommandEnvelope,
    loadContext: (now: string) => Promise<Context>,
  ): Promise<CommandOutcome<State>> {
    for (let attempt = 1; ; attempt++) {
      const { state, expectedRevision, lastPosition } = await this.load(streamId, decider);
      const context = await loadContext(this.clock.now().toISOString());
      const events = decider.decide(command, state, context);
      if (events.length === 0) return { position: lastPosition, events, state };
      try {
        const firstRevision = expectedRevision === 'no_stream' ? 0n : BigInt(expectedRevision) + 1n;
        const result = await this.store.appendToStream(
          streamId,
          events.map((event, index) =>
            this.toNewEvent(event, firstRevision + BigInt(index), streamId, envelope, context),
          ),
          expectedRevision,
        );
        if (result.nextExpectedRevision !== firstRevision + BigInt(events.length) - 1n) {
          // The store recognised these event ids from an earlier append (a retried write)
          // and kept that one: what is in the stream is the truth, not what we decided now.
          this.folded.delete(streamId);
          const stored = await this.load(streamId, decider);
          return { position: result.position, events: [], state: stored.state };
        }
        const next = evolveAll(decider, state, events);
        this.remember(streamId, decider, next, result.nextExpectedRevision, result.position);
        return { position: result.position, events, state: next };
      } catch (error) {
        if (error instanceof DuplicateEventIdError) {
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
        await delay(Math.floor(Math.random() * Math.min(5 * attempt, 40)));
      }
    }
  }

  /**
   * Commands on one stream run one after another inside this process: a hot
   * stream (a firm's seats, say) would otherwise make every racer but one
   * lose its append and retry, and a crowd of racers could exhaust the retries.
   * Other processes are still kept out by the expected revision.
   */
  private async oneAtATime<T>(streamId: string, work: () => Promise<T>): Promise<T> {
    const previous = this.streamQueues.get(streamId) ?? Promise.resolve();
    const current = previous.then(work);
    const settled = current.then(
      () => undefined,
      () => undefined,
    );
    this.streamQueues.set(streamId, settled);
    try {
      return await current;
    } finally {
      if (this.streamQueues.get(streamId) === settled) this.streamQueues.delete(streamId);
    }
  }

  /** The stream's current state: its cached state brought up to date, or a fold from the start. */
  async load<Event extends DomainEvent, State>(
    streamId: string,
    decider: Folding<Event, State>,
  ): Promise<{ state: State; expectedRevision: ExpectedRevision; lastPosition: bigint }> {
    if (decider.stateIsInLastEvent) {
      // Each event carries the state it leaves: one event is the whole state.
      const [last] = await this.store.readStream(streamId, { direction: 'backwards', maxCount: 1 });
      if (!last)
        return { state: decider.initialState(), expectedRevision: 'no_stream', lastPosition: 0n };
      return {
        state: decider.evolve(decider.initialState(), asDomainEvent<Event>(last)),
        expectedRevision: last.revision,
        lastPosition: last.position,
      };
    }
    const cached = this.folded.get(streamId);
    const from = cached?.decider === decider ? cached : undefined;
    const recorded = await this.store.readStream(
      streamId,
      from ? { fromRevision: from.revision + 1n } : {},
    );
    const state = evolveAll(
      decider,
      from ? (from.state as State) : decider.initialState(),
      recorded.map((event) => asDomainEvent<Event>(event)),
    );
    const last = recorded[recorded.length - 1];
    const revision = last ? last.revision : from?.revision;
    const position = last ? last.position : (from?.position ?? 0n);
    if (revision !== undefined) this.remember(streamId, decider, state, revision, position);
    return {
      state,
      expectedRevision: revision ?? 'no_stream',
      lastPosition: position,
    };
  }

  private remember(
    streamId: string,
    decider: object,
    state: unknown,
    revision: bigint,
    position: bigint,
  ): void {
    if ((decider as Folding<DomainEvent, unknown>).stateIsInLastEvent) return;
    this.folded.delete(streamId);
    this.folded.set(streamId, { decider, state, revision, position });
    if (this.folded.size > MAX_CACHED_STREAMS) {
      this.folded.delete(this.folded.keys().next().value as string);
    }
  }

  /**
   * The event id derives from the command, the stream and the revision the
   * event lands at: the same write retried carries the same ids (and the
   * store keeps it once), while two appends of one command to one stream — a
   * confirmation's steps, say — never share an id.
   */
  private toNewEvent(
    event: DomainEvent,
    revision: bigint,
    streamId: string,
    envelope: CommandEnvelope,
    context: DecisionContext,
  ): NewEvent {
    return {
      type: event.type,
      data: event.data as JsonObject,
      metadata: {
        eventId: deterministicId(envelope.commandId, streamId, String(revision)),
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

export function asDomainEvent<Event extends DomainEvent>(recorded: RecordedEvent): Event {
  const current = upcasters.upcast(recorded);
  return { type: current.type, data: current.data } as unknown as Event;
}
