import { Inject, Injectable, Logger } from '@nestjs/common';
import { CommandEnvelope, CommandHandler } from '../command-handling/command-handler';
import { APP_CONFIG, AppConfig } from '../config/config';
import { EVENT_STORE, EventStore, RecordedEvent } from '../event-store/event-store.port';
import type { ProcessManager } from '../projection-engine/process-manager';
import { ProcessManagerProvider } from '../projection-engine/projections.module';
import { reasonOf } from '../projection-engine/quarantine';
import { Clock, CLOCK } from '../shared/clock';
import { deterministicId } from '../shared/deterministic-id';
import { chainLinkOf } from '../shared/event-hash';
import { streams } from '../shared/ids';
import { AnchoredHead, anchorDecider, STREAM_HEADS_ANCHORED } from './anchor.decider';

/** How often the due anchors are looked for, in ms (real time; "due" is by the injected clock). */
const TICK_MS = 1_000;
/** The firms' audit streams: never anchored themselves. */
const AUDIT_CATEGORY = 'audit-';

/** A firm's changes not anchored yet. */
interface Unanchored {
  /** The streams that changed, each named once. */
  streams: Set<string>;
  events: number;
  firstPosition: bigint;
  lastPosition: bigint;
  lastEventId: string;
  /** When the oldest of them was decided (ms since the epoch): the anchor is due `maxDelayMs` later. */
  since: number;
}

interface Firm {
  /** `through` of the firm's last anchor, read from its audit stream; null before the first. */
  anchoredThrough: bigint | null;
  unanchored?: Unanchored;
}

/**
 * Writes the anchors of the firms' hash chains (ADR 0017): for each firm,
 * after `AUDIT_ANCHOR_EVERY` of its events, and at most
 * `AUDIT_ANCHOR_SECONDS` after the oldest event not anchored yet, one
 * `StreamHeadsAnchored` in `audit-{firmId}` naming the current head (revision
 * and hash) of every stream of the firm that changed since its last anchor.
 * An event removed at a stream's end, or a stream rewritten with consistent
 * hashes, then disagrees with an anchor written before.
 *
 * Events written before chains are neither counted nor named: they have no
 * hash to anchor.
 *
 * A process manager: one instance at a time holds it (lease). Heads are read
 * when the anchor is written, so an anchor written while catching up is as
 * current as one written live. The checkpoint never passes the oldest
 * unanchored event of any firm, so a restart re-reads what was not anchored;
 * what was (up to the `through` of the firm's last anchor, read once per firm
 * from its audit stream) is passed over. The command id derives from the firm
 * and `through`: an anchor retried after a crash is not appended twice.
 */
@Injectable()
@ProcessManagerProvider()
export class AnchorWriter implements ProcessManager {
  readonly name = 'chain-anchors';
  private readonly logger = new Logger('AnchorWriter');
  private readonly firms = new Map<string, Firm>();
  private readonly everyEvents: number;
  private readonly maxDelayMs: number;
  /** Events and timer ticks, one at a time: a tick never anchors in the middle of an event. */
  private turn: Promise<unknown> = Promise.resolve();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly commands: CommandHandler,
    @Inject(EVENT_STORE) private readonly store: EventStore,
    @Inject(CLOCK) private readonly clock: Clock,
    @Inject(APP_CONFIG) config: AppConfig,
  ) {
    this.everyEvents = config.auditAnchors.everyEvents;
    this.maxDelayMs = config.auditAnchors.maxDelayMs;
  }

  handle(event: RecordedEvent): Promise<void> {
    return this.inTurn(() => this.take(event));
  }

  private async take(event: RecordedEvent): Promise<void> {
    const { firmId } = event.metadata;
    if (event.streamId.startsWith(AUDIT_CATEGORY)) {
      // An anchor (another instance's before a takeover, or one re-read after a restart).
      const { through } = event.data;
      if (
        event.type === STREAM_HEADS_ANCHORED &&
        event.streamId === streams.audit(firmId) &&
        typeof through === 'string' &&
        /^\d{1,20}$/.test(through)
      ) {
        const firm = this.firms.get(firmId);
        if (firm) this.anchored(firm, BigInt(through));
      }
      return;
    }
    // Written before chains: there is no head to anchor (a later chained event names its stream).
    if (!chainLinkOf(event.metadata)) return;
    const firm = await this.firm(firmId);
    if (firm.anchoredThrough !== null && event.position <= firm.anchoredThrough) return;
    const unanchored = (firm.unanchored ??= {
      streams: new Set(),
      events: 0,
      firstPosition: event.position,
      lastPosition: 0n,
      lastEventId: event.metadata.eventId,
      since: this.decidedAt(event),
    });
    // Handled again after an anchor failed: counted once.
    if (event.position > unanchored.lastPosition) {
      unanchored.streams.add(event.streamId);
      unanchored.events++;
      unanchored.lastPosition = event.position;
      unanchored.lastEventId = event.metadata.eventId;
    }
    if (unanchored.events >= this.everyEvents) await this.anchor(firmId, firm);
  }

  /** The firm's state, its last anchor read from its audit stream the first time. */
  private async firm(firmId: string): Promise<Firm> {
    let firm = this.firms.get(firmId);
    if (!firm) {
      const { state } = await this.commands.load(streams.audit(firmId), anchorDecider);
      firm = this.firms.get(firmId) ?? { anchoredThrough: state.through };
      this.firms.set(firmId, firm);
    }
    return firm;
  }

  private anchored(firm: Firm, through: bigint): void {
    if (firm.anchoredThrough === null || through > firm.anchoredThrough) {
      firm.anchoredThrough = through;
    }
    if (firm.unanchored && firm.unanchored.lastPosition <= through) firm.unanchored = undefined;
  }

  /**
   * Appends the anchor of the firm's changed streams, at their current heads.
   * A stream whose last event is unchained (written before chains) or
   * unreadable has no head to name.
   */
  private async anchor(firmId: string, firm: Firm): Promise<void> {
    const unanchored = firm.unanchored;
    if (!unanchored) return;
    const heads = (
      await Promise.all(
        [...unanchored.streams].map(async (streamId): Promise<AnchoredHead | undefined> => {
          const [last] = await this.store.readStream(streamId, {
            direction: 'backwards',
            maxCount: 1,
          });
          const link = last && last.corrupt === undefined ? chainLinkOf(last.metadata) : undefined;
          return link && { streamId, revision: String(last.revision), hash: link.hash };
        }),
      )
    ).filter((head): head is AnchoredHead => head !== undefined);
    const through = String(unanchored.lastPosition);
    const commandId = deterministicId(this.name, firmId, through);
    const envelope: CommandEnvelope = {
      commandId,
      firmId,
      actor: { id: this.name, role: 'system' },
      correlationId: commandId,
      causationId: unanchored.lastEventId,
    };
    await this.commands.handle(
      streams.audit(firmId),
      anchorDecider,
      { type: 'AnchorStreamHeads', heads, through },
      envelope,
    );
    this.anchored(firm, unanchored.lastPosition);
  }

  /** Anchors every firm whose oldest unanchored event is `maxDelayMs` old by the clock. */
  private anchorDue(): Promise<void> {
    return this.inTurn(async () => {
      const now = this.clock.now().getTime();
      for (const [firmId, firm] of this.firms) {
        if (!firm.unanchored || firm.unanchored.since + this.maxDelayMs > now) continue;
        try {
          await this.anchor(firmId, firm);
        } catch (error) {
          // Tried again at the next tick, and by the next event of the firm.
          this.logger.warn(`Anchor of firm ${firmId} failed: ${reasonOf(error)}`);
        }
      }
    });
  }

  private decidedAt(event: RecordedEvent): number {
    const at = Date.parse(event.metadata.occurredAt);
    return Number.isNaN(at) ? this.clock.now().getTime() : at;
  }

  /** Never past the oldest unanchored event: a restart must read it again. */
  checkpointLimit(): bigint | undefined {
    let limit: bigint | undefined;
    for (const firm of this.firms.values()) {
      const first = firm.unanchored?.firstPosition;
      if (first !== undefined && (limit === undefined || first - 1n < limit)) limit = first - 1n;
    }
    return limit;
  }

  leaseAcquired(): void {
    clearInterval(this.timer);
    this.timer = setInterval(() => void this.anchorDue(), TICK_MS);
    this.timer.unref();
  }

  /** The next holder reads the unanchored events again from the checkpoint. */
  async leaseLost(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.turn;
    this.firms.clear();
  }

  async drain(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.turn;
  }

  private inTurn<T>(work: () => Promise<T>): Promise<T> {
    const result = this.turn.then(work, work);
    this.turn = result.catch(() => undefined);
    return result;
  }
}
