import { JsonObject, RecordedEvent } from './event-store.port';

/**
 * Events are immutable: when an event's shape changes, the old shape stays in
 * the log and is read through an upcaster that turns version N into N+1.
 * Readers (deciders, projections, audit) only ever see the current shape.
 */
export interface Upcaster {
  type: string;
  fromVersion: number;
  upcast(data: JsonObject): { type?: string; data: JsonObject };
}

/**
 * The schema version each event type is written with today. A type not
 * listed is at version 1. Raise a type's version together with the upcaster
 * that reads its previous version.
 */
const currentVersions: Readonly<Record<string, number>> = {
  SeatAssigned: 2,
  SeatReleased: 2,
};

export function currentSchemaVersion(type: string): number {
  return currentVersions[type] ?? 1;
}

export class UpcasterChain {
  private readonly byKey = new Map<string, Upcaster>();
  /** Types some upcaster reads: every other event is returned as is, without a lookup. */
  private readonly types = new Set<string>();

  constructor(upcasters: readonly Upcaster[]) {
    for (const upcaster of upcasters) {
      this.byKey.set(`${upcaster.type}@${upcaster.fromVersion}`, upcaster);
      this.types.add(upcaster.type);
    }
  }

  /**
   * The stored types to read for readers of `types`: those, and every type an
   * upcaster reads (an old type may upcast into a wanted one).
   */
  storedTypes(types: Iterable<string>): string[] {
    return [...new Set([...types, ...this.types])];
  }

  upcast(event: RecordedEvent): RecordedEvent {
    if (!this.types.has(event.type)) return event;
    let { type, data } = event;
    let version = event.metadata.schemaVersion;
    for (;;) {
      const upcaster = this.byKey.get(`${type}@${version}`);
      if (!upcaster) break;
      const next = upcaster.upcast(data);
      type = next.type ?? type;
      data = next.data;
      version += 1;
    }
    if (version === event.metadata.schemaVersion) return event;
    return { ...event, type, data, metadata: { ...event.metadata, schemaVersion: version } };
  }
}

/**
 * Version 2 of the seat events names the enrollment generation the seat is
 * for (docs/decisions/0006). Seats of version 1 predate generations: they
 * belong to generation 0, the one every user starts in.
 */
export const upcasters = new UpcasterChain([
  {
    type: 'SeatAssigned',
    fromVersion: 1,
    upcast: (data) => ({ data: { generation: 0, enrollmentId: null, ...data } }),
  },
  {
    type: 'SeatReleased',
    fromVersion: 1,
    upcast: (data) => ({ data: { generation: 0, ...data } }),
  },
]);
