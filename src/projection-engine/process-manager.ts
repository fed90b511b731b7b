import type { EventStore, RecordedEvent, StoreSubscription } from '../event-store/event-store.port';
import { upcasters } from '../event-store/upcasting';
import type { ReadModelStore } from '../read-model/read-model-store.port';
import type { EngineLogger } from './projection-runner';
import { operatorHint, quarantineRecord, reasonOf, unreadable } from './quarantine';

/**
 * A consumer of the log with side effects (appending commands, sending email).
 * It gets each event it handles at least once, in log order, upcast to the
 * current shape; its checkpoint is saved after `handle` succeeded, so a crash
 * between the effect and the checkpoint repeats the effect: make `handle`
 * idempotent (deterministic command ids, "already sent" checks).
 * A throwing `handle` is retried with backoff (shown in /health) and holds
 * back only this process manager, until it succeeds or an operator skips the
 * event. An event that cannot be read never reaches `handle`: it is
 * quarantined (DESIGN §6). An operator's replay hands an event to `handle`
 * once more, out of order.
 */
export interface ProcessManager {
  /** Unique; names the checkpoint. Renaming it starts over. */
  name: string;
  /** Event types to receive; all when omitted. */
  handles?: readonly string[];
  /** Where a process manager with no checkpoint starts: the whole history (default) or only what comes next. */
  startAt?: 'beginning' | 'end';
  handle(event: RecordedEvent): Promise<void>;
  /**
   * For a manager that takes work in `handle` and finishes it later (the
   * mailer): the last position whose work is all done. The saved checkpoint
   * never passes it, so after a restart the unfinished work is read again.
   */
  checkpointLimit?(): bigint | undefined;
}

/** Nest injection token: provide an array of ProcessManager (see app.module.ts). */
export const PROCESS_MANAGERS = Symbol('ProcessManagers');

/** Positions passed over (no event handled) before the checkpoint is saved anyway. */
const SAVE_SKIPPED_EVERY = 1_000n;

export type ProcessManagerStatus = 'starting' | 'catching-up' | 'live' | 'retrying' | 'stopped';

/** What became of an operator's replay. */
export type ReplayOutcome = 'handled' | 'quarantined' | 'missing';

export interface ProcessManagerRunnerOptions {
  maxBackoffMs?: number;
  /** Called, and awaited, after an event was quarantined or a replay settled. */
  onQuarantined?: () => Promise<void>;
}

export class ProcessManagerRunner {
  status: ProcessManagerStatus = 'starting';
  position = 0n;
  attempts = 0;
  lastError: { position: string; eventType: string; error: string; at: string } | null = null;
  private subscription: StoreSubscription | undefined;
  /** The checkpoint last saved. */
  private saved = 0n;
  private stopped = false;
  private readonly handles: ReadonlySet<string> | undefined;
  private wakeSleeper: (() => void) | undefined;
  /** Positions an operator skipped: never handled; a stuck event among them is let go. */
  private skips = new Set<bigint>();
  /** The event `handle` keeps failing on, while it does. */
  private stuck: { position: bigint; since: string } | undefined;
  /** Whether the store may hold a failure record of this manager (cleared once past it). */
  private failureRecorded = false;
  /** Batches of the log and operators' replays run one at a time. */
  private turn: Promise<unknown> = Promise.resolve();
  private readonly maxBackoffMs: number;

  constructor(
    private readonly eventStore: EventStore,
    private readonly store: ReadModelStore,
    readonly manager: ProcessManager,
    private readonly logger: EngineLogger,
    private readonly onProgress: () => void = () => undefined,
    private readonly options: ProcessManagerRunnerOptions = {},
  ) {
    this.handles = manager.handles ? new Set(manager.handles) : undefined;
    this.maxBackoffMs = options.maxBackoffMs ?? 30_000;
  }

  async start(): Promise<void> {
    let checkpoint = await this.store.processCheckpoint(this.manager.name);
    if (checkpoint === undefined) {
      checkpoint = this.manager.startAt === 'end' ? await this.eventStore.headPosition() : 0n;
      await this.store.saveProcessCheckpoint(this.manager.name, checkpoint);
    }
    this.skips = new Set((await this.store.skips(this.manager.name)).map((s) => s.position));
    this.failureRecorded = (await this.store.processFailures()).some(
      (failure) => failure.name === this.manager.name,
    );
    this.position = checkpoint;
    this.saved = checkpoint;
    this.status = 'catching-up';
    this.subscribe();
  }

  private subscribe(): void {
    this.subscription = this.eventStore.subscribeToAll({
      after: this.position,
      batchSize: 200,
      onEvents: (events) => this.inTurn(() => this.onEvents(events)),
      onCaughtUp: () => {
        if (this.status !== 'retrying') this.status = 'live';
        this.onProgress();
      },
      onError: (error) => void this.resubscribeAfter(error),
    });
  }

  /**
   * Handles the batch's events, then saves the checkpoint once: after a batch
   * with handled events, and otherwise every SAVE_SKIPPED_EVERY positions (a
   * write per batch of events nobody here handles would cost a transaction per
   * command under load). A crash re-handles at most the last batch: `handle`
   * is idempotent.
   */
  private async onEvents(events: RecordedEvent[]): Promise<void> {
    let handled = false;
    for (const event of events) {
      if (this.stopped) return;
      if (!this.handles || this.handles.has(event.type)) {
        if (!this.skips.has(event.position) && (await this.process(event)) === 'stopped') return;
        handled = true;
      }
      this.position = event.position;
    }
    if (handled || this.position - this.saved >= SAVE_SKIPPED_EVERY) {
      const checkpoint = this.savable(this.position);
      await this.store.saveProcessCheckpoint(this.manager.name, checkpoint);
      this.saved = checkpoint;
    }
    this.onProgress();
  }

  private savable(position: bigint): bigint {
    const limit = this.manager.checkpointLimit?.();
    return limit !== undefined && limit < position ? limit : position;
  }

  /**
   * One event: quarantined when it cannot be read (or upcast); otherwise
   * handed to `handle` until it succeeds (a failure may be a store that is
   * down) or an operator skips it.
   */
  private async process(
    event: RecordedEvent,
  ): Promise<'handled' | 'quarantined' | 'skipped' | 'stopped'> {
    const readable = readableEvent(event);
    if (typeof readable === 'string') {
      await this.quarantine(event, readable);
      return 'quarantined';
    }
    for (;;) {
      try {
        await this.manager.handle(readable);
        await this.passed(event, 'handled');
        return 'handled';
      } catch (error) {
        if (this.stopped) return 'stopped';
        const delay = await this.failed(event, error);
        await this.sleep(delay);
        if (this.stopped) return 'stopped';
        if (this.skips.has(event.position)) {
          await this.passed(event, 'skipped');
          return 'skipped';
        }
      }
    }
  }

  /** Records a failed attempt (shown in /health; kept in the store for the CLI). Answers the back-off. */
  private async failed(event: RecordedEvent, error: unknown): Promise<number> {
    this.attempts++;
    this.status = 'retrying';
    const at = new Date().toISOString();
    if (this.stuck?.position !== event.position)
      this.stuck = { position: event.position, since: at };
    this.lastError = {
      position: String(event.position),
      eventType: event.type,
      error: reasonOf(error),
      at,
    };
    const delay = Math.min(this.maxBackoffMs, 100 * 2 ** Math.min(this.attempts - 1, 20));
    this.logger.warn(
      `Process manager ${this.manager.name} failed on position ${event.position} (${event.type}), ` +
        `attempt ${this.attempts}: ${this.lastError.error}; retrying in ${delay} ms. ` +
        `To do without it: npm run projections -- skip ${this.manager.name} ${event.position}`,
    );
    try {
      await this.store.saveProcessFailure({
        name: this.manager.name,
        position: event.position,
        eventType: event.type,
        streamId: event.streamId,
        error: this.lastError.error,
        attempts: this.attempts,
        since: this.stuck.since,
        at,
      });
      this.failureRecorded = true;
    } catch {
      // The store may be what fails: the next attempt records it.
    }
    this.onProgress();
    return delay;
  }

  /** The event was handled, or skipped by an operator after failing: the manager is no longer stuck. */
  private async passed(event: RecordedEvent, how: 'handled' | 'skipped'): Promise<void> {
    if (this.attempts > 0) {
      this.logger.log(
        how === 'handled'
          ? `Process manager ${this.manager.name}: position ${event.position} handled after ${this.attempts} retries`
          : `Process manager ${this.manager.name}: position ${event.position} skipped by an operator after ${this.attempts} attempts`,
      );
    }
    this.attempts = 0;
    this.lastError = null;
    this.stuck = undefined;
    if (this.status === 'retrying') this.status = 'catching-up';
    if (this.failureRecorded) {
      await this.store.clearProcessFailure(this.manager.name);
      this.failureRecorded = false;
    }
  }

  private async quarantine(event: RecordedEvent, reason: string): Promise<void> {
    await this.store.quarantine(
      quarantineRecord(this.manager.name, 0, event, reason, new Date().toISOString()),
    );
    this.logger.warn(
      `Process manager ${this.manager.name} quarantined position ${event.position} (${event.type}): ` +
        `${reason}. ${operatorHint(this.manager.name, event.position)}`,
    );
    await this.options.onQuarantined?.();
  }

  /**
   * The operator's skips, as the engine last read them. A skip of the event
   * `handle` is failing on ends its back-off now.
   */
  noticeSkips(positions: ReadonlySet<bigint>): void {
    this.skips = new Set(positions);
    if (this.stuck && this.skips.has(this.stuck.position)) this.wakeSleeper?.();
  }

  /**
   * An operator's replay (`npm run projections -- replay NAME POSITION`):
   * hands the event at `position` to `handle` once more, between two
   * batches. Handled: it leaves the quarantine. Unreadable or failing again:
   * it stays quarantined, with the new reason. Process managers are
   * idempotent, so an event they had handled before changes nothing.
   */
  replay(position: bigint): Promise<ReplayOutcome> {
    return this.inTurn(async () => {
      const [event] = await this.eventStore.readAll({ after: position - 1n, maxCount: 1 });
      if (!event || event.position !== position) return 'missing';
      const readable = readableEvent(event);
      let reason = typeof readable === 'string' ? readable : undefined;
      if (typeof readable !== 'string') {
        try {
          await this.manager.handle(readable);
        } catch (error) {
          reason = `replay failed: ${reasonOf(error)}`;
        }
      }
      if (reason === undefined) {
        await this.store.releaseQuarantined(this.manager.name, position);
        this.logger.log(`Process manager ${this.manager.name}: position ${position} replayed`);
      } else {
        await this.quarantine(event, reason);
      }
      await this.options.onQuarantined?.();
      return reason === undefined ? 'handled' : 'quarantined';
    });
  }

  /** Runs `work` after the batch or replay in progress. */
  private inTurn<T>(work: () => Promise<T>): Promise<T> {
    const result = this.turn.then(work, work);
    this.turn = result.catch(() => undefined);
    return result;
  }

  /** The log or the checkpoint store failed: subscribe again from the last saved position. */
  private async resubscribeAfter(error: unknown): Promise<void> {
    if (this.stopped) return;
    this.attempts++;
    this.status = 'retrying';
    this.lastError = {
      position: String(this.position),
      eventType: '',
      error: reasonOf(error),
      at: new Date().toISOString(),
    };
    await this.sleep(Math.min(this.maxBackoffMs, 100 * 2 ** Math.min(this.attempts - 1, 20)));
    if (this.stopped) return;
    this.position =
      (await this.store.processCheckpoint(this.manager.name).catch(() => undefined)) ??
      this.position;
    this.subscribe();
  }

  /** A retry back-off, cut short by stop() or by an operator's skip of the stuck event. */
  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.wakeSleeper = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.status = 'stopped';
    this.wakeSleeper?.();
    await this.subscription?.stop();
  }
}

/** The event upcast to its current shape, or why it cannot be handed to any code. */
function readableEvent(event: RecordedEvent): RecordedEvent | string {
  const reason = unreadable(event);
  if (reason !== undefined) return reason;
  try {
    return upcasters.upcast(event);
  } catch (error) {
    return `upcasting failed: ${reasonOf(error)}`;
  }
}
