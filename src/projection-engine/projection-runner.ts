import type { Projection } from './projection';
import type { EventStore, RecordedEvent, StoreSubscription } from '../event-store/event-store.port';
import type {
  QuarantinedEvent,
  ReadModelStore,
  ReadModelTarget,
} from '../read-model/read-model-store.port';
import { applyBatch } from './apply-batch';
import { operatorHint } from './quarantine';
import { DocumentCache } from './unit-of-work';
import { backoffDelay } from '../shared/backoff';

/** Log events per batch: one read-model transaction each. */
const BATCH_SIZE = 1000;

/** Quarantined events a runner logs one by one before it sums them up per batch. */
const LOGGED_QUARANTINES = 20;

export type RunnerStatus = 'starting' | 'catching-up' | 'live' | 'retrying' | 'stopped';

export interface EngineLogger {
  log(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

export interface RunnerOptions {
  onProgress?: (runner: ProjectionRunner) => void;
  /** Called, and awaited, after a commit that quarantined events (before `onProgress`). */
  onQuarantined?: (runner: ProjectionRunner) => Promise<void>;
  logger: EngineLogger;
}

/**
 * Follows the global log for one generation of one projection: catch up from
 * its checkpoint, then live. An event it cannot read or apply is quarantined
 * with the checkpoint that passes it (see apply-batch.ts): it never stops.
 * A failing store (log or read models) is retried with backoff.
 */
export class ProjectionRunner {
  status: RunnerStatus = 'starting';
  position = 0n;
  /** Infrastructure trouble being retried (not a bad event). */
  lastError: string | null = null;
  private subscription: StoreSubscription | undefined;
  private readonly cache = new DocumentCache();
  private readonly handles: ReadonlySet<string>;
  private skips = new Set<bigint>();
  private retryTimer: NodeJS.Timeout | undefined;
  private retries = 0;
  private stopped = false;
  /** Each subscription gets a number; a stale one's late batches are ignored. */
  private epoch = 0;
  private quarantinedSoFar = 0;

  constructor(
    private readonly eventStore: EventStore,
    private readonly store: ReadModelStore,
    readonly projection: Projection,
    readonly target: ReadModelTarget,
    private readonly options: RunnerOptions,
  ) {
    this.handles = new Set(projection.handles);
  }

  async start(): Promise<void> {
    if (this.stopped) return;
    const checkpoint = await this.store.checkpoint(this.target);
    if (!checkpoint) throw new Error(`No checkpoint for ${this.describe()}`);
    this.skips = new Set((await this.store.skips(this.projection.name)).map((s) => s.position));
    this.position = checkpoint.position;
    this.status = 'catching-up';
    const epoch = ++this.epoch;
    this.subscription = this.eventStore.subscribeToAll({
      after: this.position,
      batchSize: BATCH_SIZE,
      onEvents: (events) => this.onEvents(epoch, events),
      onCaughtUp: () => {
        if (epoch !== this.epoch) return;
        this.status = 'live';
        this.retries = 0;
        this.lastError = null;
        this.options.onProgress?.(this);
      },
      onError: (error) => {
        if (epoch === this.epoch) this.retryLater(error);
      },
    });
  }

  private async onEvents(epoch: number, events: RecordedEvent[]): Promise<void> {
    if (epoch !== this.epoch || this.stopped) return;
    const result = await applyBatch(
      this.store,
      this.target,
      this.projection,
      this.handles,
      this.skips,
      this.cache,
      this.position,
      events,
    );
    if (epoch !== this.epoch) return;
    if (result.outcome === 'conflict') {
      // Another process applied these events first: continue from its checkpoint.
      this.options.logger.warn(`${this.describe()}: checkpoint moved by another writer; reloading`);
      this.restart();
      return;
    }
    this.position = result.position;
    if (result.quarantined.length > 0) {
      this.logQuarantined(result.quarantined);
      await this.options.onQuarantined?.(this);
    }
    this.options.onProgress?.(this);
  }

  /**
   * One line per event for the first few; then one line per batch, so that a
   * regression quarantining every event of a type does not flood the log.
   */
  private logQuarantined(records: readonly QuarantinedEvent[]): void {
    const logged = Math.max(
      0,
      Math.min(records.length, LOGGED_QUARANTINES - this.quarantinedSoFar),
    );
    for (const record of records.slice(0, logged)) {
      this.options.logger.warn(
        `${this.describe()} quarantined position ${record.position} (${record.eventType}): ` +
          `${record.reason}. ${operatorHint(this.projection.name, record.position)}`,
      );
    }
    if (records.length > logged) {
      this.options.logger.warn(
        `${this.describe()} quarantined ${records.length - logged} more events up to position ` +
          `${records[records.length - 1].position}: npm run projections -- quarantine ${this.projection.name}`,
      );
    }
    this.quarantinedSoFar += records.length;
  }

  private restart(): void {
    this.epoch++;
    this.cache.clear();
    const previous = this.subscription;
    this.subscription = undefined;
    void (async () => {
      await previous?.stop();
      if (!this.stopped) await this.start();
    })().catch((error: unknown) => this.retryLater(error));
  }

  private retryLater(error: unknown): void {
    if (this.stopped) return;
    this.epoch++;
    this.status = 'retrying';
    this.lastError = error instanceof Error ? error.message : String(error);
    const delay = backoffDelay(++this.retries, { firstMs: 200, maxMs: 30_000 });
    this.options.logger.warn(`${this.describe()}: ${this.lastError}; retrying in ${delay} ms`);
    const previous = this.subscription;
    this.subscription = undefined;
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      void (async () => {
        await previous?.stop();
        await this.start();
      })().catch((next: unknown) => this.retryLater(next));
    }, delay);
    this.retryTimer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.epoch++;
    clearTimeout(this.retryTimer);
    this.status = 'stopped';
    await this.subscription?.stop();
  }

  private describe(): string {
    return `Projection ${this.projection.name} (generation ${this.target.generation})`;
  }
}
