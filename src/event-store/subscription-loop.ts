import { RecordedEvent, SubscribeOptions } from './event-store.port';

export interface PullSource {
  read(after: bigint, maxCount: number): Promise<RecordedEvent[]>;
  /** Resolves when new events may have been appended. */
  waitForChange(): Promise<void>;
}

/**
 * One read of the log shared by the subscriptions of a store that ask for the
 * same position in the same turn of the event loop: a commit wakes every
 * projection and process manager of the service at once, each at the same
 * checkpoint, and each used to read and parse the same rows (ten reads of
 * every command's events; bench/read-models.bench.ts, lag part, CPU profile).
 *
 * Any answer is a correct one for a subscription: the events after `after`,
 * in log order, without a gap (positions are allocated in commit order), as a
 * read a moment earlier would have seen them. So the first non-empty read at a
 * position answers the others asking for no more events than it got, or than
 * there were (a read that reached the head); its events are handed to each as
 * they are, shared, so consumers must not change them (none does: projections
 * and process managers are pure over their events). An empty read is never
 * kept: a subscription that found nothing goes to sleep until the next
 * commit, and must not miss one made after a kept read. What was read is
 * forgotten at the next turn, so a read is never older than the turn.
 */
export class SharedReads {
  private last: { after: bigint; maxCount: number; events: RecordedEvent[] } | undefined;

  /** `read`: the store's own read of up to `maxCount` events after a position. */
  constructor(private readonly readNow: (after: bigint, maxCount: number) => RecordedEvent[]) {}

  read(after: bigint, maxCount: number): RecordedEvent[] {
    const last = this.last;
    if (last && last.after === after) {
      const reachedHead = last.events.length < last.maxCount;
      if (last.events.length >= maxCount) return last.events.slice(0, maxCount);
      if (reachedHead) return last.events.slice();
    }
    const events = this.readNow(after, maxCount);
    if (events.length === 0) return events;
    if (this.last === undefined) setImmediate(() => (this.last = undefined));
    this.last = { after, maxCount, events };
    // Each subscription gets an array of its own (the events are shared).
    return events.slice();
  }
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
