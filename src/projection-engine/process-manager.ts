import type { EventStore, RecordedEvent, StoreSubscription } from '../event-store/event-store.port';
import type { ProcessLease, ReadModelStore } from '../read-model/read-model-store.port';
import {
  DEFAULT_LEASE_RENEW_MS,
  DEFAULT_LEASE_TTL_MS,
  LeaseFence,
  LeaseLostError,
  LeaseSettings,
  newOwnerId,
  safetyMarginMs,
} from './process-lease';
import type { EngineLogger } from './projection-runner';
import { operatorHint, quarantineRecord, readableEvent, reasonOf } from './quarantine';
import { backoffDelay } from '../shared/backoff';

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
 *
 * One instance at a time runs it (DESIGN §6): the runner holds a lease in the
 * read-model store while it works, and a standby instance takes over once the
 * lease expires or is released (see process-lease.ts).
 */
export interface ProcessManager {
  /** Unique; names the checkpoint. Renaming it starts over. */
  name: string;
  /** Event types to receive; all when omitted. */
  handles?: readonly string[];
  handle(event: RecordedEvent): Promise<void>;
  /**
   * For a manager that takes work in `handle` and finishes it later (the
   * mailer): the last position whose work is all done. The saved checkpoint
   * never passes it, so after a restart the unfinished work is read again.
   */
  checkpointLimit?(): bigint | undefined;
  /**
   * This instance took the lease: called before the first `handle`. Side
   * effects that must not happen twice check `fence` right before they happen.
   */
  leaseAcquired?(fence: LeaseFence): void;
  /**
   * This instance no longer holds the lease (another took it, or it could not
   * be renewed in time; `fence.signal` is aborted already): stop side effects
   * and forget the work taken in `handle`. The next holder reads it again from
   * the checkpoint. Resolves once nothing is in progress.
   */
  leaseLost?(): Promise<void>;
  /**
   * A clean stop: finish what is in progress, while the lease is still held,
   * then resolve. The runner then saves its checkpoint and releases the lease.
   */
  drain?(): Promise<void>;
}

/** Positions passed over (no event handled) before the checkpoint is saved anyway. */
const SAVE_SKIPPED_EVERY = 1_000n;

export type ProcessManagerStatus =
  'starting' | 'standby' | 'catching-up' | 'live' | 'retrying' | 'stopped';

/** What became of an operator's replay; `not-holder`: another instance runs this manager. */
export type ReplayOutcome = 'handled' | 'quarantined' | 'missing' | 'not-holder';

export interface ProcessManagerRunnerOptions {
  maxBackoffMs?: number;
  /** Called, and awaited, after an event was quarantined or a replay settled. */
  onQuarantined?: () => Promise<void>;
  /** This instance's owner id, the lease's TTL and renewal interval. */
  leases?: LeaseSettings;
}

/** One term of ownership: from taking the lease to losing, or releasing, it. */
interface Work {
  lease: ProcessLease;
  /** Aborted when this term ends: the fence's signal. */
  controller: AbortController;
  /** `performance.now()` until which the lease surely holds: when its last renewal was asked, plus the TTL. */
  validUntil: number;
  subscription?: StoreSubscription;
}

export const defaultLeaseSettings = (): LeaseSettings => ({
  owner: newOwnerId(),
  ttlMs: DEFAULT_LEASE_TTL_MS,
  renewEveryMs: DEFAULT_LEASE_RENEW_MS,
});

export class ProcessManagerRunner {
  status: ProcessManagerStatus = 'starting';
  /** Handled up to here; on a standby, the owner's checkpoint as last read. */
  position = 0n;
  attempts = 0;
  lastError: { position: string; eventType: string; error: string; at: string } | null = null;
  /** The checkpoint last saved. */
  private saved = 0n;
  private stopped = false;
  private readonly handles: ReadonlySet<string> | undefined;
  private wakeSleeper: (() => void) | undefined;
  /** Set while this instance holds the lease. */
  private work: Work | undefined;
  private leaseTimer: NodeJS.Timeout | undefined;
  private deadline: NodeJS.Timeout | undefined;
  /** The renewal or acquisition in progress: stop() waits for it, so none outlives the store. */
  private ticking: Promise<void> | undefined;
  /** Checkpoint saves, one after another: each compares with the one before. */
  private saving: Promise<boolean> = Promise.resolve(true);
  /** Positions an operator skipped: never handled; a stuck event among them is let go. */
  private skips = new Set<bigint>();
  /** The event `handle` keeps failing on, while it does. */
  private stuck: { position: bigint; since: string } | undefined;
  /** Whether the store may hold a failure record of this manager (cleared once past it). */
  private failureRecorded = false;
  /** Batches of the log and operators' replays run one at a time. */
  private turn: Promise<unknown> = Promise.resolve();
  private readonly maxBackoffMs: number;
  readonly leases: LeaseSettings;

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
    this.leases = options.leases ?? defaultLeaseSettings();
  }

  /** The lease while this instance holds it. */
  get lease(): ProcessLease | undefined {
    return this.work?.lease;
  }

  /** Tries to take the lease now, then renews it (or tries again) every `renewEveryMs`. */
  async start(): Promise<void> {
    await this.tick();
    if (this.stopped) return;
    this.leaseTimer = setInterval(() => void this.tick(), this.leases.renewEveryMs);
    this.leaseTimer.unref();
  }

  private tick(): Promise<void> {
    if (this.ticking) return this.ticking;
    const work = this.work;
    const step = work ? this.renew(work) : this.stopped ? Promise.resolve() : this.tryAcquire();
    this.ticking = step
      .catch((error: unknown) => {
        // The store did not answer: a holder keeps working until its deadline, a standby tries again.
        this.logger.warn(
          `Process manager ${this.manager.name}: lease ${work ? 'renewal' : 'acquisition'} failed: ${message(error)}`,
        );
      })
      .finally(() => (this.ticking = undefined));
    return this.ticking;
  }

  private async tryAcquire(): Promise<void> {
    const asked = performance.now();
    const acquired = await this.store.acquireProcessLease(
      this.manager.name,
      this.leases.owner,
      this.leases.ttlMs,
    );
    if (!acquired) {
      this.status = 'standby';
      this.position = (await this.store.processCheckpoint(this.manager.name)) ?? this.position;
      this.onProgress();
      return;
    }
    const { checkpoint: stored, ...lease } = acquired;
    const work: Work = {
      lease,
      controller: new AbortController(),
      validUntil: asked + this.leases.ttlMs,
    };
    this.work = work;
    this.armDeadline(work);
    if (this.stopped) return this.standDown(work, 'the service is stopping');
    try {
      let checkpoint = stored;
      if (checkpoint === undefined) {
        // A process manager with no checkpoint starts from the whole history.
        checkpoint = 0n;
        if (!(await this.store.saveProcessCheckpoint(lease, undefined, checkpoint))) {
          return this.standDown(work, 'another instance saved the first checkpoint');
        }
      }
      this.skips = new Set((await this.store.skips(this.manager.name)).map((k) => k.position));
      this.failureRecorded = (await this.store.processFailures()).some(
        (failure) => failure.name === this.manager.name,
      );
      if (this.work !== work) return;
      this.position = checkpoint;
      this.saved = checkpoint;
      this.saving = Promise.resolve(true);
      this.status = 'catching-up';
      this.logger.log(
        `Process manager ${this.manager.name}: this instance holds the lease (term ${lease.term}), from position ${checkpoint}`,
      );
      this.manager.leaseAcquired?.(this.fence(work));
      this.subscribe(work);
    } catch (error) {
      await this.standDown(work, `it could not start (${message(error)})`);
    }
  }

  /** Renews the lease, and saves the checkpoint if it moved (a standby taking over then re-reads less). */
  private async renew(work: Work): Promise<void> {
    const asked = performance.now();
    if (!(await this.store.renewProcessLease(work.lease, this.leases.ttlMs))) {
      return this.standDown(work, 'another instance took the lease over');
    }
    if (this.work !== work) return;
    work.validUntil = asked + this.leases.ttlMs;
    this.armDeadline(work);
    if (!(await this.saveCheckpoint(work, this.savable(this.position)))) {
      return this.standDown(work, 'its checkpoint was moved by another instance');
    }
  }

  /**
   * Stands down once the lease may have less than the safety margin left without
   * a confirmed renewal: a standby can take it over only after the whole TTL.
   */
  private armDeadline(work: Work): void {
    clearTimeout(this.deadline);
    const due = work.validUntil - safetyMarginMs(this.leases) - performance.now();
    this.deadline = setTimeout(
      () => void this.standDown(work, 'its lease could not be renewed in time'),
      Math.max(0, due),
    );
    this.deadline.unref();
  }

  /**
   * Ends this term of ownership: aborts the fence, stops following the log,
   * lets the manager drop its work, and releases the lease (a no-op when
   * another instance took it) so a standby need not wait for the expiry.
   */
  private async standDown(work: Work, reason: string): Promise<void> {
    if (this.work !== work) return;
    this.work = undefined;
    clearTimeout(this.deadline);
    work.controller.abort(new LeaseLostError(this.manager.name));
    this.status = this.stopped ? 'stopped' : 'standby';
    this.logger.warn(
      `Process manager ${this.manager.name}: ${reason}; this instance stands by (term ${work.lease.term} ended)`,
    );
    this.wakeSleeper?.();
    // Not awaited: this may run inside the subscription's own handler. Its batch sees
    // that the term ended at its next step and returns.
    void work.subscription?.stop();
    try {
      await this.manager.leaseLost?.();
      await this.store.releaseProcessLease(work.lease);
    } catch (error) {
      this.logger.warn(`Process manager ${this.manager.name}: ${message(error)}`);
    }
    this.onProgress();
  }

  private fence(work: Work): LeaseFence {
    const margin = safetyMarginMs(this.leases);
    const lost = () => new LeaseLostError(this.manager.name);
    return {
      signal: work.controller.signal,
      confirm: async () => {
        if (this.work !== work || performance.now() > work.validUntil - margin) throw lost();
        if (!(await this.store.holdsProcessLease(work.lease, margin))) throw lost();
        if (this.work !== work) throw lost();
      },
    };
  }

  private subscribe(work: Work): void {
    work.subscription = this.eventStore.subscribeToAll({
      after: this.position,
      batchSize: 200,
      onEvents: (events) => this.inTurn(() => this.onEvents(work, events)),
      onCaughtUp: () => {
        if (this.work !== work) return;
        if (this.status !== 'retrying') this.status = 'live';
        this.onProgress();
      },
      onError: (error) => void this.resubscribeAfter(work, error),
    });
  }

  /**
   * Handles the batch's events, then saves the checkpoint once: after a batch
   * with handled events, and otherwise every SAVE_SKIPPED_EVERY positions (a
   * write per batch of events nobody here handles would cost a transaction per
   * command under load). A crash re-handles at most the last batch: `handle`
   * is idempotent. A save refused (compare-and-set) means another instance
   * owns the work now: this one stands down.
   */
  private async onEvents(work: Work, events: RecordedEvent[]): Promise<void> {
    let handled = false;
    for (const event of events) {
      if (this.work !== work) return;
      if (!this.handles || this.handles.has(event.type)) {
        if (!this.skips.has(event.position) && (await this.process(work, event)) === 'stopped') {
          return;
        }
        if (this.work !== work) return;
        handled = true;
      }
      this.position = event.position;
    }
    if (handled || this.position - this.saved >= SAVE_SKIPPED_EVERY) {
      if (!(await this.saveCheckpoint(work, this.savable(this.position)))) {
        return this.standDown(work, 'its checkpoint was moved by another instance');
      }
    }
    this.onProgress();
  }

  /** Compare-and-set on the checkpoint last saved; never moves it backwards. False: not the holder any more. */
  private saveCheckpoint(work: Work, position: bigint): Promise<boolean> {
    const save = async () => {
      if (this.work !== work) return false;
      if (position <= this.saved) return true;
      if (!(await this.store.saveProcessCheckpoint(work.lease, this.saved, position))) return false;
      this.saved = position;
      return true;
    };
    this.saving = this.saving.then(save, save);
    return this.saving;
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
    work: Work,
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
        if (this.stopped || this.work !== work) return 'stopped';
        const delay = await this.failed(event, error);
        await this.sleep(delay);
        if (this.stopped || this.work !== work) return 'stopped';
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
    const delay = backoffDelay(this.attempts, { firstMs: 100, maxMs: this.maxBackoffMs });
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
      // Another instance runs this manager now: its side effects are its own.
      if (!this.work) return 'not-holder';
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
  private async resubscribeAfter(work: Work, error: unknown): Promise<void> {
    if (this.stopped || this.work !== work) return;
    this.attempts++;
    this.status = 'retrying';
    this.lastError = {
      position: String(this.position),
      eventType: '',
      error: message(error),
      at: new Date().toISOString(),
    };
    await this.sleep(backoffDelay(this.attempts, { firstMs: 100, maxMs: this.maxBackoffMs }));
    if (this.stopped || this.work !== work) return;
    this.position = this.saved;
    this.subscribe(work);
  }

  /** A retry back-off, cut short by stop(), the end of the term, or an operator's skip of the stuck event. */
  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.wakeSleeper = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  /**
   * A clean stop: stop following the log, let the manager finish what is in
   * progress (still under the lease, which is renewed meanwhile), save the
   * checkpoint and release the lease, so a standby takes over at once.
   */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.wakeSleeper?.();
    await this.ticking;
    const work = this.work;
    if (work) {
      await work.subscription?.stop();
      await this.manager.drain?.();
      if (this.work === work) {
        await this.saveCheckpoint(work, this.savable(this.position)).catch(() => false);
        this.work = undefined;
        clearTimeout(this.deadline);
        await this.store
          .releaseProcessLease(work.lease)
          .catch((error: unknown) =>
            this.logger.warn(`Process manager ${this.manager.name}: ${message(error)}`),
          );
        work.controller.abort(new LeaseLostError(this.manager.name));
      }
    }
    clearInterval(this.leaseTimer);
    clearTimeout(this.deadline);
    this.status = 'stopped';
  }
}

function message(error: unknown): string {
  return reasonOf(error);
}
