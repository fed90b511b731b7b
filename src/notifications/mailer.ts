import { Inject, Injectable, Logger, OnModuleDestroy } from '@nestjs/common';
import { ModuleRef } from '@nestjs/core';
import {
  FailedEmailDoc,
  failedEmailCount,
  oldestFailedEmails,
} from '../../projections/failed-emails.projection';
import { CommandHandler } from '../command-handling/command-handler';
import { AppConfig } from '../config/config';
import { APP_CONFIG } from '../config/config';
import type { RecordedEvent } from '../event-store/event-store.port';
import { LeaseFence, LeaseLostError } from '../projection-engine/process-lease';
import type { ProcessManager } from '../projection-engine/process-manager';
import { ProcessManagerProvider } from '../projection-engine/projections.module';
import { ProjectionEngine } from '../projection-engine/projection-engine';
import { backoffDelay } from '../shared/backoff';
import { deterministicId } from '../shared/deterministic-id';
import { streams } from '../shared/ids';
import { renderEmail } from './email-content';
import { MAX_CONNECTIONS, type MailTransport, PermanentRefusal } from './mail-transport';
import { notificationsDecider, QueuedEmail } from './notifications.decider';

/** Messages handed to the transport at once: one per SMTP connection. */
const CONCURRENCY = MAX_CONNECTIONS;
const FIRST_RETRY_MS = 1_000;
/** Sends recorded in one append at most. */
const RECORD_BATCH = 500;
/** Failed emails /health details list, oldest first. */
const FAILED_DETAILS = 10;

export const MAIL_TRANSPORT = Symbol('MailTransport');

interface Delivery {
  firmId: string;
  email: QueuedEmail & { queuedAt: string };
  /** Log position of its EmailQueued: the checkpoint stays below it until it is sent. */
  position: bigint;
  correlationId: string;
  attempts: number;
  nextAttemptAt: number;
  lastError: string | null;
  /** The server's answer once it took the message, while the record of it is still to be made. */
  accepted: string | null;
  /** The server's permanent refusal, while the record of it is still to be made. */
  refusal: PermanentRefusal | null;
  inFlight: boolean;
}

export interface MailerHealth {
  transport: string;
  target: string;
  /** Queued and not yet recorded as sent or failed (by this instance, while it holds the lease). */
  pending: number;
  /** Of those, the ones whose last attempt failed. */
  retrying: number;
  sentSinceStart: number;
  /** Refused for good by the mail server and not retried yet, all firms (the failed-emails read model). */
  failed: number;
  oldestQueuedAt: string | null;
  /** The last transient failure of a message still pending: its text may name an address (operators only). */
  lastError: {
    messageId: string;
    firmId: string;
    error: string;
    attempts: number;
    nextAttemptAt: string;
  } | null;
  /**
   * Details of the oldest failed emails, all firms (operators only: the
   * server's text may name the address); GET .../mfa/notifications/failed lists a firm's.
   */
  failedEmails: FailedEmailDoc[];
}

/**
 * Sends what the notification policy queued, and records each message the
 * server (or the outbox) took as EmailSent in the firm's notifications stream.
 *
 * Guarantees (docs/notifications.md):
 * - At least once. The checkpoint never passes a queued message that is not
 *   recorded as sent (`checkpointLimit`), so a restart reads it again; before
 *   sending, the stream is asked whether it was sent meanwhile.
 * - A duplicate only if the process dies between the server's acceptance and
 *   the record, and then with the same Message-ID (fixed at queuing).
 * - Failures (server down, temporary refusal) are retried per message with
 *   exponential back-off, capped by MAIL_RETRY_MAX_SECONDS. Sending never holds
 *   up the log: `handle` only takes note, so other firms' emails and the other
 *   consumers go on.
 * - A permanent refusal (a 5xx reply to the recipient or the message, see
 *   PermanentRefusal) is recorded as EmailFailed and not retried; it no longer
 *   holds the checkpoint back. An operator may queue it again (RetryEmail).
 * - One sender across instances: only the holder of the mailer's lease sends,
 *   and it confirms the lease in the store right before each hand-over; when
 *   the lease ends, the sends in progress are aborted (docs/decisions/0014).
 */
@Injectable()
@ProcessManagerProvider()
export class Mailer implements ProcessManager, OnModuleDestroy {
  readonly name = 'notification-mailer';
  readonly handles = ['EmailQueued', 'EmailSent', 'EmailFailed'];
  private readonly logger = new Logger('Mailer');
  /** By message id, in queuing order. */
  private readonly deliveries = new Map<string, Delivery>();
  /** Sends in progress (each holds a slot) and records in progress. */
  private readonly inFlight = new Set<Promise<void>>();
  private readonly recordings = new Set<Promise<void>>();
  /** Sends the server took, waiting to be recorded, by firm. */
  private readonly toRecord = new Map<
    string,
    Array<{ delivery: Delivery; done: (error?: unknown) => void }>
  >();
  private readonly flushing = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private timerAt = Infinity;
  private pumping = false;
  private stopped = false;
  private sent = 0;
  private lastFailure: Delivery | undefined;
  /** Set while this instance holds the mailer's lease: only then does it send. */
  private fence: LeaseFence | undefined;
  private engine: ProjectionEngine | undefined;

  constructor(
    private readonly commands: CommandHandler,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(MAIL_TRANSPORT) private readonly transport: MailTransport,
    private readonly moduleRef: ModuleRef,
  ) {}

  handle(event: RecordedEvent): Promise<void> {
    const { firmId } = event.metadata;
    if (event.type === 'EmailQueued') {
      const email = event.data as unknown as QueuedEmail & { queuedAt: string };
      if (!this.deliveries.has(email.messageId)) {
        this.deliveries.set(email.messageId, {
          firmId,
          email,
          position: event.position,
          correlationId: event.metadata.correlationId,
          attempts: 0,
          nextAttemptAt: 0,
          lastError: null,
          accepted: null,
          refusal: null,
          inFlight: false,
        });
        this.schedule(0);
      }
    } else {
      // EmailSent or EmailFailed: recorded (by this instance, or before a restart). Its work is
      // done as far as the checkpoint goes, even while the code that recorded it still runs.
      this.deliveries.delete(String(event.data.messageId));
    }
    return Promise.resolve();
  }

  leaseAcquired(fence: LeaseFence): void {
    this.fence = fence;
  }

  /**
   * Another instance sends from now on. The sends in progress are aborted by
   * the fence's signal; what was queued is forgotten (the next holder reads it
   * again from the checkpoint). Sends the server took are still recorded: a
   * recorded message is one the next holder does not send again.
   */
  async leaseLost(): Promise<void> {
    this.fence = undefined;
    clearTimeout(this.timer);
    this.timerAt = Infinity;
    this.deliveries.clear();
    this.lastFailure = undefined;
    await Promise.allSettled([...this.inFlight]);
  }

  /** A clean stop: no new send; those in progress end and are recorded, under the lease still. */
  async drain(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await Promise.allSettled([...this.inFlight]);
    await Promise.allSettled([...this.recordings]);
  }

  checkpointLimit(): bigint | undefined {
    let lowest: bigint | undefined;
    for (const delivery of this.deliveries.values()) {
      if (lowest === undefined || delivery.position < lowest) lowest = delivery.position;
    }
    return lowest === undefined ? undefined : lowest - 1n;
  }

  async health(): Promise<MailerHealth> {
    // Resolved late: the engine is built with the process managers, this one among them.
    const engine = this.engine ?? this.moduleRef.get(ProjectionEngine, { strict: false });
    if (!engine) throw new Error('The projection engine is not running');
    this.engine = engine;
    const failedEmails = engine.reader('failed-emails');
    const [failed, oldestFailed] = await Promise.all([
      failedEmailCount(failedEmails),
      oldestFailedEmails(failedEmails, FAILED_DETAILS),
    ]);
    let retrying = 0;
    let oldest: string | null = null;
    for (const delivery of this.deliveries.values()) {
      if (delivery.attempts > 0) retrying++;
      if (oldest === null || delivery.email.queuedAt < oldest) oldest = delivery.email.queuedAt;
    }
    const failure = this.lastFailure;
    return {
      transport: this.transport.kind,
      target: this.transport.target,
      pending: this.deliveries.size,
      retrying,
      sentSinceStart: this.sent,
      failed,
      oldestQueuedAt: oldest,
      lastError:
        failure && this.deliveries.get(failure.email.messageId) === failure && failure.lastError
          ? {
              messageId: failure.email.messageId,
              firmId: failure.firmId,
              error: failure.lastError,
              attempts: failure.attempts,
              nextAttemptAt: new Date(failure.nextAttemptAt).toISOString(),
            }
          : null,
      failedEmails: oldestFailed,
    };
  }

  async onModuleDestroy(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await Promise.allSettled([...this.inFlight]);
    await Promise.allSettled([...this.recordings]);
    this.transport.close();
  }

  /** Runs the pump at `at` (ms since epoch) unless it is due to run sooner. */
  private schedule(at: number): void {
    if (this.stopped || !this.fence || at >= this.timerAt) return;
    clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = setTimeout(() => this.pump(), Math.max(0, at - Date.now()));
    this.timer.unref();
  }

  /** Starts the due deliveries, up to CONCURRENCY at a time, and sets the timer for the next. */
  private pump(): void {
    this.timerAt = Infinity;
    const fence = this.fence;
    if (this.stopped || this.pumping || !fence) return;
    this.pumping = true;
    try {
      const now = Date.now();
      let next = Infinity;
      for (const delivery of this.deliveries.values()) {
        if (delivery.inFlight) continue;
        if (delivery.nextAttemptAt > now) {
          next = Math.min(next, delivery.nextAttemptAt);
          continue;
        }
        if (this.inFlight.size >= CONCURRENCY) break;
        const work = this.deliver(delivery, fence).finally(() => {
          this.inFlight.delete(work);
          this.schedule(0);
        });
        this.inFlight.add(work);
      }
      if (next !== Infinity) this.schedule(next);
    } finally {
      this.pumping = false;
    }
  }

  /**
   * Hands the message to the transport (holding one of the CONCURRENCY slots),
   * then records it without holding the slot: records of one firm are batched
   * into one append, so the log's fsync does not bound the sending rate.
   */
  private async deliver(delivery: Delivery, fence: LeaseFence): Promise<void> {
    delivery.inFlight = true;
    const { firmId, email } = delivery;
    try {
      if (delivery.accepted === null && delivery.refusal === null) {
        // Read again after a restart: it may have been sent before the process stopped.
        const stream = streams.notifications(firmId);
        const { state } = await this.commands.load(stream, notificationsDecider);
        if (!state.pending.has(email.messageId)) {
          this.forget(delivery);
          delivery.inFlight = false;
          return;
        }
        // The last moment to find out that another instance sends now (a stall past the
        // lease): from here the message is the mail server's.
        await fence.confirm();
        delivery.accepted = await this.transport.send(
          renderEmail(firmId, email, this.config.mailFrom),
          fence.signal,
        );
      }
    } catch (error) {
      if (error instanceof PermanentRefusal && !fence.signal.aborted) {
        delivery.refusal = error;
      } else {
        // The lease ended: not a failure of the message; the next holder sends it.
        if (!(error instanceof LeaseLostError) && !fence.signal.aborted) {
          this.failed(delivery, error);
        }
        delivery.inFlight = false;
        return;
      }
    }
    if (delivery.refusal) {
      await this.recordFailure(delivery);
      return;
    }
    const recording = this.record(delivery)
      .then(
        () => {
          this.forget(delivery);
          this.sent++;
          if (delivery.attempts > 0) {
            this.logger.log(
              `${email.notification} ${email.messageId} of firm ${firmId} sent after ${delivery.attempts} failed attempts`,
            );
          }
        },
        // The server has it; only the record is tried again (`accepted` is kept).
        (error: unknown) => this.failed(delivery, error),
      )
      .finally(() => {
        delivery.inFlight = false;
        this.recordings.delete(recording);
        this.schedule(0);
      });
    this.recordings.add(recording);
  }

  /**
   * Records a permanent refusal as EmailFailed (one append: refusals are rare),
   * then forgets the message: it is not retried, and the checkpoint moves on.
   * If the append fails, only the record is tried again (`refusal` is kept).
   */
  private async recordFailure(delivery: Delivery): Promise<void> {
    const { firmId, email } = delivery;
    const refusal = delivery.refusal!;
    try {
      await this.commands.handle(
        streams.notifications(firmId),
        notificationsDecider,
        {
          type: 'RecordEmailsFailed',
          failures: [
            {
              messageId: email.messageId,
              transport: this.transport.kind,
              responseCode: refusal.responseCode,
              response: refusal.response,
              attempts: delivery.attempts + 1,
            },
          ],
        },
        {
          commandId: deterministicId(this.name, 'failed', email.messageId),
          firmId,
          actor: { id: this.name, role: 'system' },
          correlationId: delivery.correlationId,
        },
      );
      this.forget(delivery);
      // The server's text goes to the log (it may name the address), never to /health's public part.
      this.logger.warn(
        `${email.notification} ${email.messageId} of firm ${firmId} refused for good ` +
          `(${refusal.responseCode} ${refusal.response}); recorded as failed, not retried`,
      );
    } catch (error) {
      this.failed(delivery, error);
    } finally {
      delivery.inFlight = false;
    }
  }

  /** Drops the delivery, unless the lease changed hands since and it is another term's. */
  private forget(delivery: Delivery): void {
    if (this.deliveries.get(delivery.email.messageId) === delivery) {
      this.deliveries.delete(delivery.email.messageId);
    }
  }

  private failed(delivery: Delivery, error: unknown): void {
    const { firmId, email } = delivery;
    delivery.attempts++;
    delivery.lastError = error instanceof Error ? error.message : String(error);
    // Jitter, so that many messages failing together do not retry together.
    delivery.nextAttemptAt =
      Date.now() +
      backoffDelay(delivery.attempts, {
        firstMs: FIRST_RETRY_MS,
        maxMs: this.config.mailRetryMaxMs,
        jitter: 0.2,
      });
    this.lastFailure = delivery;
    this.logger.warn(
      `${email.notification} ${email.messageId} of firm ${firmId}: attempt ${delivery.attempts} failed ` +
        `(${delivery.lastError}); next in ${Math.round((delivery.nextAttemptAt - Date.now()) / 1000)} s`,
    );
  }

  /** Resolves once the send is recorded as EmailSent, in a batch with the firm's other sends. */
  private record(delivery: Delivery): Promise<void> {
    return new Promise((resolve, reject) => {
      const queue = this.toRecord.get(delivery.firmId) ?? [];
      queue.push({ delivery, done: (error) => (error === undefined ? resolve() : reject(error)) });
      this.toRecord.set(delivery.firmId, queue);
      if (!this.flushing.has(delivery.firmId)) void this.flushRecords(delivery.firmId);
    });
  }

  private async flushRecords(firmId: string): Promise<void> {
    this.flushing.add(firmId);
    for (;;) {
      const queue = this.toRecord.get(firmId);
      if (!queue || queue.length === 0) {
        // No await between this check and these deletions: a send recorded meanwhile starts a new flush.
        this.toRecord.delete(firmId);
        this.flushing.delete(firmId);
        return;
      }
      const batch = queue.splice(0, RECORD_BATCH);
      const messageIds = batch.map(({ delivery }) => delivery.email.messageId);
      try {
        await this.commands.handle(
          streams.notifications(firmId),
          notificationsDecider,
          {
            type: 'RecordEmailsSent',
            sends: batch.map(({ delivery }) => ({
              messageId: delivery.email.messageId,
              transport: this.transport.kind,
              response: (delivery.accepted ?? '').slice(0, 200),
            })),
          },
          {
            commandId: deterministicId(this.name, ...messageIds),
            firmId,
            actor: { id: this.name, role: 'system' },
            correlationId: batch[0].delivery.correlationId,
          },
        );
        for (const { done } of batch) done();
      } catch (error) {
        for (const { done } of batch) done(error);
      }
    }
  }
}
