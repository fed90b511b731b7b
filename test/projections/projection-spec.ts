import assert from 'node:assert/strict';
import { InMemoryDocuments, project, Projection } from '../../src/projection-engine/projection';
import type { JsonObject, RecordedEvent } from '../../src/event-store/event-store.port';
import type { ReadModelDocument } from '../../src/read-model/read-model-store.port';
import { newEvent } from '../support/log-events';

/*
 * Given/when/then for projections, in the spirit of Emmett's projection
 * specifications: events in, documents out, no database.
 *
 *   const spec = projectionSpec(licenseUsageProjection);
 *   spec.given([requested, activated(10)]).when(seatAssigned('u-1'))
 *     .then({ usage: { acme: { ..., seatsInUse: 1 } }, seats: { 'acme/u-1': {...} } });
 *   spec.given([activated(10)]).when(seatAssigned('u-1'), seatAssigned('u-1')).then(...);
 *   spec.given([activated(10), seatAssigned('u-1')]).when(seatAssigned('u-1')).thenNothingChanges();
 *   spec.passesOver(event('SubscriptionRenamed', { name: 'premium' }));
 *   spec.given([]).when(seatAssigned(42)).thenThrows('SeatAssigned.userId is not a string');
 *
 * Events are folded through `evolve` over documents in memory (`project`,
 * where a missing document is absent), as the engine folds them into a
 * store: the same function, so what a spec shows is what the dashboards read.
 */

/** Collection → document id → document. */
export type Documents = Record<string, Record<string, object>>;

export interface ProjectionThen {
  /** Each collection named holds exactly these documents afterwards (collections not named are not checked). */
  then(expected: Documents): void;
  /**
   * The `when` events change no document, each one given to `evolve` as is,
   * even of a type the projection does not handle (the engine passes those
   * over without calling it).
   */
  thenNothingChanges(): void;
  /** `evolve` throws on the (last) `when` event: the engine quarantines it. */
  thenThrows(message: string | RegExp): void;
}

export interface ProjectionSpec {
  given(events: readonly RecordedEvent[]): { when(...events: RecordedEvent[]): ProjectionThen };
  /**
   * An event of a type the projection does not handle: not in its `handles`,
   * so the engine never gives it to `evolve`; and given anyway, after
   * `given`, it changes nothing.
   */
  passesOver(event: RecordedEvent, given?: readonly RecordedEvent[]): void;
}

export function projectionSpec(projection: Projection): ProjectionSpec {
  const spec: ProjectionSpec = {
    passesOver(unknown, given = []) {
      assert.ok(!projection.handles.includes(unknown.type), `${unknown.type} is handled`);
      spec.given(given).when(unknown).thenNothingChanges();
    },
    given: (given) => ({
      when: (...when) => ({
        then(expected) {
          const documents = project(projection, [...given, ...when]);
          for (const [collection, docs] of Object.entries(expected)) {
            assert.deepStrictEqual(
              documents.collection(collection),
              docs,
              `collection ${collection}`,
            );
          }
        },
        thenNothingChanges() {
          const documents = project(projection, given);
          const before = everything(projection, documents);
          for (const event of when) {
            assert.deepStrictEqual(
              projection.evolve(event, documents),
              [],
              `${event.type} changes`,
            );
          }
          assert.deepStrictEqual(
            everything(projection, project(projection, when, documents)),
            before,
          );
        },
        thenThrows(message) {
          const documents = project(projection, [...given, ...when.slice(0, -1)]);
          assert.throws(() => projection.evolve(when[when.length - 1], documents), {
            message,
          } as { message: string | RegExp });
        },
      }),
    }),
  };
  return spec;
}

function everything(
  projection: Projection,
  documents: InMemoryDocuments,
): Record<string, Record<string, ReadModelDocument>> {
  return Object.fromEntries(
    projection.collections.map((c) => [c.name, documents.collection(c.name)]),
  );
}

let position = 0n;

/**
 * A decider's event of the firm, recorded as the engine hands it to a
 * projection (upcast, readable). Typed by the decider's union, so a spec
 * cannot drift from the events the slices append:
 * `recorded<SubscriptionEvent>({ type: 'SeatAssigned', data: { ... } })`.
 */
export function recorded<E extends { type: string; data: object }>(
  domainEvent: E,
  firmId = 'acme',
): RecordedEvent {
  return event(domainEvent.type, domainEvent.data as JsonObject, firmId);
}

/** Any recorded event, including one no decider appends (an unknown type, a malformed one). */
export function event(type: string, data: JsonObject, firmId = 'acme'): RecordedEvent {
  position += 1n;
  return {
    ...newEvent(firmId, type, data),
    streamId: `test-${firmId}`,
    revision: position,
    position,
  };
}
