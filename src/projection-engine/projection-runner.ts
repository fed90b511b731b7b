import type { Projection } from '../../projections/projection';
import type { EventStore, RecordedEvent, StoreSubscription } from '../event-store/event-store.port';
import type {
  ProjectionFailure,
  ReadModelStore,
  ReadModelTarget,
} from '../read-model/read-model-store.port';
import { applyBatch } from './apply-batch';
import { DocumentCache } from './unit-of-work';

export type RunnerStatus = 'starting' | 'catching-up' | 'live' | 'failed' | 'retrying' | 'stopped';

export interface EngineLogger {
  log(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

export interface RunnerOptions {
  batchSize?: number;
  onProgress?: (runner: ProjectionRunner) => void;
  logger: EngineLogger;
}

/**
 * Follows the global log for one generation of one projection: catch up from
 * its checkpoint, then live. A failing `apply` stops this runner only (status
 * `failed`, the failure stored with the checkpoint) until an operator skips
 * the event or the service restarts. A failing store (log or read models)
 * is retried with backoff.
 */
export class ProjectionRunner {
  status: RunnerStatus = 'starting';
  position = 0n;
  failure: ProjectionFailure | null = null;
  /** Infrastructure trouble being retried (not a poison event). */
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
    // A stored failure is tried again: the code may have been fixed since.
    this.failure = null;
    this.status = 'catching-up';
    const epoch = ++this.epoch;
    this.subscription = this.eventStore.subscribeToAll({
      after: this.position,
      batchSize: this.options.batchSize ?? 1000,
      onEvents: (events) => this.onEvents(epoch, events),
      onCaughtUp: () => {
        if (epoch !== this.epoch || this.status === 'failed') return;
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
    if (epoch !== this.epoch || this.stopped || this.status === 'failed') return;
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
    if (result.failure) {
      this.failure = result.failure;
      this.status = 'failed';
      this.options.logger.error(
        `Projection ${this.projection.name} stopped at position ${result.failure.position} ` +
          `(${result.failure.eventType}): ${result.failure.error}. ` +
          `Fix and restart, or skip it: npm run projections -- skip ${this.projection.name} ${result.failure.position}`,
      );
      // Not awaited: the subscription waits for this very handler to return.
      void this.subscription?.stop();
    }
    this.options.onProgress?.(this);
  }

  /** Called by the engine's watch: resumes a failed runner once its event was skipped. */
  async checkSkips(): Promise<void> {
    if (this.status !== 'failed' || !this.failure) return;
    const skips = await this.store.skips(this.projection.name);
    if (skips.some((skip) => String(skip.position) === this.failure?.position)) {
      this.options.logger.log(
        `Projection ${this.projection.name}: position ${this.failure.position} skipped by an operator; resuming`,
      );
      this.restart();
    }
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
    const delay = Math.min(30_000, 200 * 2 ** this.retries++);
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
