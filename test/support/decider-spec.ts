import assert from 'node:assert/strict';
import { Decider, DomainEvent, fold } from '../../src/shared/decider';
import { DomainError, DomainErrorKind } from '../../src/shared/domain-error';

/*
 * Given/when/then for deciders, in the spirit of Emmett's DeciderSpecification:
 *
 *   const spec = deciderSpec(subscriptionDecider, { now });
 *   spec.given([requested, activated]).when(assignSeat('u-1')).then([seatAssigned('u-1')]);
 *   spec.given([]).when(assignSeat('u-1')).thenThrows('subscription-not-active');
 *
 * The state is the fold of `evolve` over the given events, as the command handler
 * rebuilds it from the stream; so a spec also proves that the events it starts from
 * lead to the state the rule needs. Plain `node:assert`: no test framework needed.
 */

export interface DeciderThen<Event extends DomainEvent> {
  /** The command causes exactly these events; `[]` means "nothing changes". */
  then(expected: readonly Event[]): void;
  /** The command is refused with a DomainError of this stable code (and kind); returns it for further checks. */
  thenThrows(code: string, kind?: DomainErrorKind): DomainError;
}

export interface DeciderSpec<Command, Event extends DomainEvent, Context> {
  given(events: readonly Event[]): {
    when(command: Command, contextOverrides?: Partial<Context>): DeciderThen<Event>;
  };
}

export function deciderSpec<Command, Event extends DomainEvent, State, Context>(
  decider: Decider<Command, Event, State, Context>,
  defaultContext: Context,
): DeciderSpec<Command, Event, Context> {
  return {
    given: (events) => ({
      when: (command, contextOverrides = {}) => {
        const decide = (): Event[] =>
          decider.decide(command, fold(decider, events), {
            ...defaultContext,
            ...contextOverrides,
          });
        return {
          then(expected) {
            assert.deepStrictEqual(decide(), expected);
          },
          thenThrows(code, kind) {
            let produced: Event[];
            try {
              produced = decide();
            } catch (error: unknown) {
              if (!(error instanceof DomainError)) throw error;
              assert.equal(error.code, code, `refused with "${error.code}" instead of "${code}"`);
              if (kind !== undefined) assert.equal(error.kind, kind, `kind of "${code}"`);
              return error;
            }
            assert.fail(
              `expected a refusal "${code}", but the command was accepted with ${JSON.stringify(produced)}`,
            );
          },
        };
      },
    }),
  };
}
