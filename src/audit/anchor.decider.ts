import { Decider, DecisionContext, DomainEvent, eventTypesOf } from '../shared/decider';

/*
 * The firm's audit stream, `audit-{firmId}` (ADR 0017): anchors of its
 * streams' hash chains. Each anchor records the head (revision and hash) of
 * every stream of the firm that changed since the previous one, so that
 * removing events at a stream's end, or rewriting a stream with consistent
 * hashes, disagrees with an anchor written before.
 */

export const STREAM_HEADS_ANCHORED = 'StreamHeadsAnchored';

/** One stream's chain head when anchored. */
export interface AnchoredHead {
  streamId: string;
  /** Revision of the stream's last event, decimal (revisions are 64-bit). */
  revision: string;
  /** That event's `metadata.hash`. */
  hash: string;
}

export type AuditEvent = DomainEvent<
  typeof STREAM_HEADS_ANCHORED,
  {
    /** Sorted by stream id. */
    heads: AnchoredHead[];
    /** Log position (decimal) up to which the firm's changes were taken into account. */
    through: string;
    anchoredAt: string;
  }
>;

export interface AnchorStreamHeads {
  type: 'AnchorStreamHeads';
  heads: AnchoredHead[];
  through: string;
}

export interface AuditState {
  /** `through` of the last anchor; null before the first. */
  through: bigint | null;
}

/**
 * Anchors at most once per log position: a late duplicate (an anchor for a
 * `through` not past the last one) and an anchor with no heads append nothing.
 * The state is the last anchor's `through`, so the stream never needs folding.
 */
export const anchorDecider: Decider<AnchorStreamHeads, AuditEvent, AuditState> = {
  eventTypes: eventTypesOf<AuditEvent['type']>({ StreamHeadsAnchored: true }),
  initialState: () => ({ through: null }),
  stateIsInLastEvent: true,
  decide(command: AnchorStreamHeads, state: AuditState, context: DecisionContext): AuditEvent[] {
    const through = BigInt(command.through);
    if (command.heads.length === 0) return [];
    if (state.through !== null && through <= state.through) return [];
    const heads = [...command.heads].sort((a, b) =>
      a.streamId < b.streamId ? -1 : a.streamId > b.streamId ? 1 : 0,
    );
    return [
      {
        type: STREAM_HEADS_ANCHORED,
        data: { heads, through: command.through, anchoredAt: context.now },
      },
    ];
  },
  // A `through` that is not a position (a damaged event) leaves the state as it was.
  evolve: (state: AuditState, event: AuditEvent): AuditState =>
    /^\d{1,20}$/.test(String(event.data.through)) ? { through: BigInt(event.data.through) } : state,
};
