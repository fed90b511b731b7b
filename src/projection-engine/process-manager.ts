import type { EventStore, RecordedEvent, StoreSubscription } from '../event-store/event-store.port';
import { upcasters } from '../event-store/upcasting';
import type { ReadModelStore } from '../read-model/read-model-store.port';
import type { EngineLogger } from './projection-runner';

/**
 * A consumer of the log with side effects (appending commands, sending email).
 * It gets each event it handles at least once, in log order, upcast to the
 * current shape; its checkpoint is saved after `handle` succeeded, so a crash
 * between the effect and the checkpoint repeats the effect: make `handle`
 * idempotent (deterministic command ids, "already sent" checks).
 * A throwing `handle` is retried with backoff (shown in /health) and holds
 * back only this process manager.
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

  constructor(
    private readonly eventStore: EventStore,
    private readonly store: ReadModelStore,
    readonly manager: ProcessManager,
    private readonly logger: EngineLogger,
    private readonly onProgress: () => void = () => undefined,
    private readonly maxBackoffMs = 30_000,
  ) {
    this.handles = manager.handles ? new Set(manager.handles) : undefined;
  }

  async start(): Promise<void> {
    let checkpoint = await this.store.processCheckpoint(this.manager.name);
    if (checkpoint === undefined) {
      checkpoint = this.manager.startAt === 'end' ? await this.eventStore.headPosition() : 0n;
      await this.store.saveProcessCheckpoint(this.manager.name, checkpoint);
    }
    this.position = checkpoint;
    this.saved = checkpoint;
    this.status = 'catching-up';
    this.subscribe();
  }

  private subscribe(): void {
    this.subscription = this.eventStore.subscribeToAll({
      after: this.position,
      batchSize: 200,
      onEvents: (events) => this.onEvents(events),
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
        await this.handleWithRetries(event);
        if (this.stopped) return;
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

  private async handleWithRetries(event: RecordedEvent): Promise<void> {
    const current = upcasters.upcast(event);
    for (;;) {
      try {
        await this.manager.handle(current);
        if (this.attempts > 0) {
          this.logger.log(
            `Process manager ${this.manager.name}: position ${event.position} handled after ${this.attempts} retries`,
          );
        }
        this.attempts = 0;
        this.lastError = null;
        if (this.status === 'retrying') this.status = 'catching-up';
        return;
      } catch (error) {
        if (this.stopped) return;
        this.attempts++;
        this.status = 'retrying';
        this.lastError = {
          position: String(event.position),
          eventType: event.type,
          error: error instanceof Error ? error.message : String(error),
          at: new Date().toISOString(),
        };
        const delay = Math.min(this.maxBackoffMs, 100 * 2 ** Math.min(this.attempts - 1, 20));
        this.logger.warn(
          `Process manager ${this.manager.name} failed on position ${event.position} (${event.type}), ` +
            `attempt ${this.attempts}: ${this.lastError.error}; retrying in ${delay} ms`,
        );
        this.onProgress();
        await this.sleep(delay);
      }
    }
  }

  /** The log or the checkpoint store failed: subscribe again from the last saved position. */
  private async resubscribeAfter(error: unknown): Promise<void> {
    if (this.stopped) return;
    this.attempts++;
    this.status = 'retrying';
    this.lastError = {
      position: String(this.position),
      eventType: '',
      error: error instanceof Error ? error.message : String(error),
      at: new Date().toISOString(),
    };
    await this.sleep(Math.min(this.maxBackoffMs, 100 * 2 ** Math.min(this.attempts - 1, 20)));
    if (this.stopped) return;
    this.position =
      (await this.store.processCheckpoint(this.manager.name).catch(() => undefined)) ??
      this.position;
    this.subscribe();
  }

  /** A retry back-off, cut short by stop(). */
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
