/**
 * An aggregate is a decider: plain functions over plain data. `decide` gets
 * everything it needs as arguments (the time and any outside facts come in the
 * context), so it can be specified with given/when/then and no framework.
 */
export interface DomainEvent<Type extends string = string, Data extends object = object> {
  type: Type;
  data: Data;
}

export interface Decider<Command, Event extends DomainEvent, State, Context = DecisionContext> {
  /**
   * Every event type `evolve` handles. A fold passes over any other type (an
   * event written by a newer version, or left after a rollback: DESIGN §6)
   * instead of failing on it. Build it with `eventTypesOf` so that a new type
   * left out fails to compile.
   */
  eventTypes: readonly string[];
  initialState: () => State;
  /** Returns the events the command causes; an empty list means "nothing to change". Throws DomainError to refuse. */
  decide: (command: Command, state: State, context: Context) => Event[];
  evolve: (state: State, event: Event) => State;
  /**
   * Every event of the stream carries the whole state it leaves behind, so the
   * state is the stream's last event alone (a stream that must stay fast to
   * decide however long it grows).
   */
  stateIsInLastEvent?: boolean;
  /**
   * Folds many events at once; must equal `events.reduce(evolve, state)`. For
   * states holding large collections: `evolve` must copy them to stay pure,
   * which makes a long fold quadratic, while a batch can copy once.
   */
  evolveMany?: (state: State, events: readonly Event[]) => State;
}

export interface DecisionContext {
  /** ISO-8601 time of the decision, from the injected clock. */
  now: string;
}

/** The list of a union's event types, checked complete by the compiler: `eventTypesOf<Event['type']>({ A: true, B: true })`. */
export function eventTypesOf<Type extends string>(types: Record<Type, true>): readonly Type[] {
  return Object.keys(types) as Type[];
}

/** The state the events leave, from the initial state; types the decider does not know are passed over. */
export function fold<Event extends DomainEvent, State>(
  decider: Pick<
    Decider<unknown, Event, State, never>,
    'initialState' | 'evolve' | 'evolveMany' | 'eventTypes'
  >,
  events: readonly Event[],
): State {
  const known = new Set(decider.eventTypes);
  return evolveAll(
    decider,
    decider.initialState(),
    events.filter((event) => known.has(event.type)),
  );
}

/** `events.reduce(evolve, state)`, through `evolveMany` when the decider has one. */
export function evolveAll<Event extends DomainEvent, State>(
  decider: Pick<Decider<unknown, Event, State, never>, 'evolve' | 'evolveMany'>,
  state: State,
  events: readonly Event[],
): State {
  if (events.length === 0) return state;
  return decider.evolveMany
    ? decider.evolveMany(state, events)
    : events.reduce(decider.evolve, state);
}

/** Makes a `switch` over a union fail to compile when a new member is not handled. */
export function assertNever(value: never): never {
  throw new Error(`Unhandled variant: ${JSON.stringify(value)}`);
}
