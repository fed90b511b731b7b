import { RecordedEvent, SubscribeOptions } from './event-store.port';

export interface PullSource {
  read(after: bigint, maxCount: number): Promise<RecordedEvent[]>;
  /** Resolves when new events may have been appended. */
  waitForChange(): Promise<void>;
}

/**
 * Catch-up then live, for stores that are read by position: read batches until
 * the head, report "caught up", sleep until the store signals a commit, repeat.
 * The handler's promise is awaited before the next batch, so a slow consumer
 * applies back-pressure instead of buffering the log in memory.
 */
export class SubscriptionLoop {
  private stopped = false;
  private done: Promise<void> = Promise.resolve();
  private wake: (() => void) | undefined;

  constructor(
    private readonly options: SubscribeOptions,
    private readonly source: PullSource,
  ) {}

  start(): Promise<void> {
    this.done = this.run();
    return this.done;
  }

  private async run(): Promise<void> {
    let position = this.options.after;
    const batchSize = this.options.batchSize ?? 500;
    try {
      while (!this.stopped) {
        const events = await this.source.read(position, batchSize);
        if (this.stopped) return;
        if (events.length > 0) {
          await this.options.onEvents(events);
          position = events[events.length - 1].position;
          continue;
        }
        this.options.onCaughtUp?.(position);
        await Promise.race([
          this.source.waitForChange(),
          new Promise<void>((resolve) => (this.wake = resolve)),
        ]);
      }
    } catch (error) {
      if (!this.stopped) this.options.onError?.(error);
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    await this.done;
  }
}
